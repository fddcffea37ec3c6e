#!/usr/bin/env bash
# schemathesis.sh: property-based API testing of the server against its own OpenAPI document.
#
#   .ci/schemathesis.sh
#
# - installs schemathesis $SCHEMATHESIS_VERSION from PyPI into the project's virtual environment
#   (target/ci-venv, .ci/lib/tools.sh) when that version is not on the PATH;
# - starts ONE server from ${PULSE_BIN:-<repo>/target/debug/pulse} (never builds it) on a free
#   127.0.0.1 port with a temporary PULSE_DATA_DIR (SQLite) and the rate limits off, so the
#   handlers, not the throttle, answer;
# - registers a user and runs `schemathesis run` on GET /api/v1/openapi.json with its bearer
#   token, every check but `unsupported_method` (see .ci/schemathesis.toml for that and for the
#   few per-operation exceptions): no 5xx, every status, content type, header and body as the
#   document says, schema-invalid input refused, schema-valid input accepted, auth enforced.
#   POST /auth/logout (it would revoke the token mid-run), GET /ws (a WebSocket) and GET /events
#   (a stream that never ends; its refusals are tested in server/tests/black_box/events.rs) are left out;
# - then fails if the server logged a panic or counted any 5xx in /metrics;
# - stops the server (by pid), removes the temporary folder, exits non-zero on any failure.
# Environment: PULSE_BIN; SCHEMATHESIS_EXAMPLES (cases per operation and phase, default 100;
# about 40 s on 2 cores in a debug build); SCHEMATHESIS_SEED (default 1, fixed so a failure
# reproduces; `random` for a fresh one); SCHEMATHESIS_TIMEOUT (seconds, default 170).
# Reports (JUnit and NDJSON) and schemathesis's cache are written to target/schemathesis/.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${PULSE_BIN:-$ROOT/target/debug/pulse}
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-100}
SEED=${SCHEMATHESIS_SEED:-1}
TIMEOUT=${SCHEMATHESIS_TIMEOUT:-170}
REPORTS=$ROOT/target/schemathesis

log() { echo "[schemathesis $(date -u +%H:%M:%S)] $*" >&2; }

[[ -x "$BIN" ]] || { log "no server binary at $BIN (build it first, or set PULSE_BIN)"; exit 1; }

# shellcheck source-path=SCRIPTDIR source=lib/tools.sh
source "$HERE/lib/tools.sh"
tools_ensure_schemathesis "$SCHEMATHESIS_VERSION"

# shellcheck source-path=SCRIPTDIR source=lib/throwaway-server.sh
source "$HERE/lib/throwaway-server.sh"
throwaway_server_start pulse-schemathesis

TOKEN=$(curl -fsS "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
  -d '{"username":"schemathesis","password":"correct-horse-battery"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

[[ "$SEED" == random ]] && SEED_ARGS=() || SEED_ARGS=(--seed "$SEED")
mkdir -p "$REPORTS"
rm -f "$REPORTS"/junit-*.xml "$REPORTS"/ndjson-*.ndjson # this run's reports only
log "schemathesis run: $EXAMPLES examples per operation, seed ${SEED}"
started=$(date +%s)
status=0
# From the reports folder: schemathesis keeps its cache (crashes to replay first next time) in
# ./.schemathesis, which belongs under target/, not in the work tree.
cd "$REPORTS"
timeout --kill-after=10 "$TIMEOUT" schemathesis --config-file "$HERE/schemathesis.toml" run \
  "$BASE/api/v1/openapi.json" --url "$BASE" \
  -H "Authorization: Bearer $TOKEN" \
  --exclude-path /api/v1/auth/logout --exclude-path /api/v1/ws --exclude-path /api/v1/events \
  --max-examples "$EXAMPLES" "${SEED_ARGS[@]}" \
  --request-timeout 10 --wait-for-schema 30 \
  --report junit,ndjson --report-dir "$REPORTS" || status=$?
log "schemathesis finished in $(( $(date +%s) - started )) s with status $status"
[[ $status -eq 124 || $status -eq 137 ]] && log "schemathesis ran out of its ${TIMEOUT} s"

# Belt and braces: a panic or a 5xx anywhere in the run fails it, checked or not.
if grep -n 'panicked' "$WORK/server.log" >&2; then
  log "the server panicked (above)"; status=1
fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  log "the server died during the run"; status=1
else
  errors=$(curl -fsS "$BASE/metrics" |
    awk '/^pulse_http_request_duration_seconds_count\{.*status="5[0-9][0-9]"/ && $NF > 0' || true)
  if [[ -n "$errors" ]]; then
    log "the server answered 5xx:"; echo "$errors" >&2; status=1
  fi
fi
exit "$status"
