#!/usr/bin/env bash
# End-to-end browser tests against the real Pulseboard binary.
#
#   bash e2e/run.sh                      # uses ../target/debug/pulseboard
#   PULSEBOARD_BIN=target/release/pulseboard bash e2e/run.sh
#
# Installs the npm dependencies (and Chromium through apt when it is missing
# and we are root), starts `pulseboard all` on a free port with a throw-away
# data directory, waits for GET /healthz, runs `npm test`, stops the server and
# exits with the tests' status. The server also allows the origin of a second
# free port (PULSEBOARD_WEB_PORT) for the cross-origin test. Screenshots and the
# server log go to e2e/artifacts/; the README's screenshots to docs/screenshots/ only with
# PULSEBOARD_UPDATE_SCREENSHOTS=1 (else to e2e/artifacts/docs/, leaving the tracked tree as it was).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$HERE"

BIN="${PULSEBOARD_BIN:-../target/debug/pulseboard}"
case "$BIN" in
  /*) ;;
  *) BIN="$HERE/$BIN" ;;
esac
if [ ! -x "$BIN" ]; then
  echo "run.sh: the pulseboard binary is missing or not executable: $BIN" >&2
  echo "run.sh: build it first (cargo build) or set PULSEBOARD_BIN" >&2
  exit 1
fi

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "run.sh: installing chromium with apt-get" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "run.sh: Chromium not found at $CHROMIUM (install the 'chromium' package or set CHROMIUM_PATH)" >&2
    exit 1
  fi
fi

if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

mkdir -p artifacts
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
PORT="$(free_port)"
# A second origin for the cross-origin test (the web app served apart from the API, like nginx).
WEB_PORT="$(free_port)"
while [ "$WEB_PORT" = "$PORT" ]; do WEB_PORT="$(free_port)"; done
DATA_DIR="$(mktemp -d)"
LOG="$HERE/artifacts/server.log"
URL="http://127.0.0.1:$PORT"

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT INT TERM

echo "run.sh: starting $BIN all on $URL (data in $DATA_DIR, log in $LOG)"
(
  cd "$ROOT"
  # PULSEBOARD_BIN is this script's setting, not a config key: the server would refuse it.
  exec env -u PULSEBOARD_BIN PULSEBOARD_DATA_DIR="$DATA_DIR" PULSEBOARD_HTTP__PORT="$PORT" PULSEBOARD_HTTP__HOST=127.0.0.1 \
    PULSEBOARD_HTTP__CORS_ORIGINS="[http://127.0.0.1:$WEB_PORT]" \
    "$BIN" all
) >"$LOG" 2>&1 &
SERVER_PID=$!

ready=""
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run.sh: the server exited before it was ready; its log:" >&2
    tail -n 50 "$LOG" >&2 || true
    exit 1
  fi
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))' "$URL/healthz"; then
    ready=1
    break
  fi
  sleep 0.5
done
if [ -z "$ready" ]; then
  echo "run.sh: GET /healthz did not answer 200 within 60 s; server log:" >&2
  tail -n 50 "$LOG" >&2 || true
  exit 1
fi
echo "run.sh: server is up"

status=0
# The admin tests promote a user with `pulseboard user promote` against this server's data.
PULSEBOARD_URL="$URL" PULSEBOARD_WEB_PORT="$WEB_PORT" PULSEBOARD_E2E_BIN="$BIN" PULSEBOARD_E2E_DATA_DIR="$DATA_DIR" \
  npm test || status=$?
if [ "$status" -ne 0 ]; then
  echo "run.sh: tests failed (status $status); last lines of the server log:" >&2
  tail -n 30 "$LOG" >&2 || true
fi
exit "$status"
