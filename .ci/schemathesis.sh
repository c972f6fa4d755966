#!/usr/bin/env bash
# Schemathesis over the generated OpenAPI document, against the real binary.
#
#   bash .ci/schemathesis.sh                        # uses target/debug/pulseboard
#   PULSEBOARD_BIN=target/release/pulseboard bash .ci/schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=100 bash .ci/schemathesis.sh
#
# Installs a pinned schemathesis from PyPI (into target/schemathesis-venv, once), starts `pulseboard all` on a
# free port of 127.0.0.1 with a throw-away SQLite data folder, registers a user, makes it an
# administrator (so that the admin routes are reached too) and runs every operation, signed in
# with the user's access token as Bearer, a bounded number of examples each; then, with a few
# examples, with a personal API token of one scope and with no credentials. It fails on any
# server error (5xx other than the documented 503/507), an answer that does not match its schema,
# and a status code the document does not list.
#
# Left out, because they would end the run's own session: DELETE /session (logs out: the access
# token is refused from then on). DELETE /user stays in: without the password it can only be
# refused.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SCHEMATHESIS_VERSION="4.32.5"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
BIN="${PULSEBOARD_BIN:-target/debug/pulseboard}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
if [ ! -x "$BIN" ]; then
  echo "schemathesis.sh: the pulseboard binary is missing: $BIN (cargo build -p pulseboard, or set PULSEBOARD_BIN)" >&2
  exit 1
fi

VENV="${SCHEMATHESIS_VENV:-$ROOT/target/schemathesis-venv}"
if [ "$("$VENV/bin/st" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n1)" != "$SCHEMATHESIS_VERSION" ]; then
  echo "schemathesis.sh: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  if ! python3 -m venv "$VENV"; then
    # Debian ships venv separately; CI runs as root with apt.
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$VENV" && python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
DATA_DIR="$(mktemp -d)"
REPORT_DIR="$ROOT/target/schemathesis"
mkdir -p "$REPORT_DIR"
LOG="$REPORT_DIR/server.log"
# One environment for the server and for `pulseboard user promote`, which opens the same data.
# Cheap password hashing: the run registers and logs in often, on a debug build.
export PULSEBOARD_DATA_DIR="$DATA_DIR" PULSEBOARD_HTTP__HOST=127.0.0.1 PULSEBOARD_HTTP__PORT="$PORT" \
  PULSEBOARD_HTTP__PUBLIC_URL="$URL" PULSEBOARD_AUTH__ARGON2_MEMORY_KIB=8 \
  PULSEBOARD_AUTH__ARGON2_ITERATIONS=1 PULSEBOARD_LOGGING__LEVEL=warn
unset DATABASE_URL AMQP_URL

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT INT TERM

echo "schemathesis.sh: starting $BIN all on $URL (log in $LOG)"
"$BIN" all >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 120); do
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "schemathesis.sh: the server exited; its log:" >&2; tail -n 50 "$LOG" >&2; exit 1; }
  curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$URL/healthz" >/dev/null

EMAIL="schemathesis-$$@example.com"
TOKEN="$(curl -fsS -H 'Content-Type: application/json' \
  -d "{\"email\":\"$EMAIL\",\"password\":\"schemathesis password 1\"}" "$URL/user" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
"$BIN" user promote "$EMAIL" >/dev/null
# Something to find: a task and a resource, so that lists and ETags have bodies.
curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"title":"a task"}' "$URL/tasks" >/dev/null
curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"url":"https://example.com/"}' "$URL/resources" >/dev/null

# The document under test, kept with the report.
curl -fsS "$URL/openapi.json" >"$REPORT_DIR/openapi.json"

# A personal API token with one scope: every other operation must answer a documented 403.
NARROW="$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"schemathesis","scopes":["tasks:read"]}' "$URL/tokens" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

# One pass per identity: the administrator's access token (every route reached), the narrow API
# token and nobody (documented 403s and 401s), the last two with fewer examples.
status=0
run() { # NAME EXAMPLES [HEADER]
  local name="$1" examples="$2"
  shift 2
  echo "schemathesis.sh: pass '$name', $examples examples per operation"
  # From the report folder: schemathesis keeps its cache (.schemathesis/) in the working directory.
  (cd "$REPORT_DIR" && "$VENV/bin/st" run "$URL/openapi.json" --url "$URL" "$@" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --exclude-operation-id session_logout \
    --request-timeout 30 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --report "${SCHEMATHESIS_REPORT:-junit}" --report-dir "$REPORT_DIR/$name" \
    --warnings off) || status=1
}
run admin "$MAX_EXAMPLES" -H "Authorization: Bearer $TOKEN"
run narrow-token 5 -H "Authorization: Bearer $NARROW"
run anonymous 5
if [ "$status" -ne 0 ]; then
  echo "schemathesis.sh: failures (status $status); last lines of the server log:" >&2
  tail -n 30 "$LOG" >&2 || true
fi
exit "$status"
