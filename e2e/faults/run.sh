#!/usr/bin/env bash
# The fault suite (docs/reliability.md): kill -9 of a worker mid-import and mid-mail, kill -9 of
# `serve` during writes, RabbitMQ and PostgreSQL restarted under load, the disk filling up under
# SQLite; each on SQLite and on PostgreSQL where it applies. About 3 minutes on two cores.
#
#   bash e2e/faults/run.sh                       # uses target/debug/pulseboard
#   PULSEBOARD_BIN=target/release/pulseboard bash e2e/faults/run.sh --backend sqlite
#   bash e2e/faults/run.sh --only disk-full --runs 3
#
# Arguments go to faults.py (--help lists them). Needs root (a tmpfs mount; the private PostgreSQL
# and RabbitMQ run as their own users), python3 (standard library only), psql, initdb/pg_ctl and
# rabbitmq-server. The shared PostgreSQL on 127.0.0.1:5432 (PULSEBOARD_FAULTS_PG_URL) gets a fresh
# database per scenario, dropped afterwards; the shared servers are never stopped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

BIN="${PULSEBOARD_BIN:-target/debug/pulseboard}"
if [ ! -x "$BIN" ]; then
  echo "faults/run.sh: the pulseboard binary is missing or not executable: $BIN" >&2
  echo "faults/run.sh: build it first (cargo build -p pulseboard) or set PULSEBOARD_BIN" >&2
  exit 1
fi
if [ "$(id -u)" != "0" ]; then
  echo "faults/run.sh: run as root: the disk-full scenario mounts a tmpfs" >&2
  exit 1
fi
for tool in python3 psql; do
  command -v "$tool" >/dev/null 2>&1 || { echo "faults/run.sh: $tool is not installed" >&2; exit 1; }
done

# faults.py removes what it started (processes, private servers, mounts, databases, temp folders)
# on any exit, a failure or SIGTERM included.
exec env PULSEBOARD_BIN="$BIN" python3 "$HERE/faults.py" "$@"
