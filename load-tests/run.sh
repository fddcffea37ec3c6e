#!/usr/bin/env bash
# Pulse load tests: start a whole topology on loopback, run one named scenario, stop everything.
#
#   load-tests/run.sh <scenario> [options] [-- extra k6 arguments]
#
# Scenarios (script, default instances, default backend):
#   smoke     smoke.js   1  pg        20 likes/s for 10 s, CI sized
#   likes     likes.js   2  pg        RATE likes/s (1000) for DURATION (60s), like -> frame latency of every like
#   embedded  likes.js   1  embedded  the same likes scenario on SQLite, no Redis
#   fanout    harness/fanout.mjs (Node)  1  pg   SOCKETS sockets (10000) watching one post, 20 likes/s
#   fanout-k6 fanout.js  1  pg        the same in k6 (k6 cannot receive 100k frames/s on 2 cores)
#   ceiling   runs ceiling.sh (its own options)
#   sockets100k  runs sockets100k.sh (its own options)
#   idle      idle.js    2  pg        SOCKETS idle sockets (1000) on instance 2 held for DURATION; RSS per socket
# Options:
#   --instances N        server instances (ports 18081.., FIRST_PORT to change)
#   --backend pg|embedded
#   --rate R             likes/s (likes, embedded, smoke) or LIKE_RATE (fanout)
#   --duration D         60s, 2m, ...
#   --sockets N          fanout, idle
#   --driver k6|node|rust  likes, embedded: k6 (default) or the Node harness harness/likes.mjs, the
#                        same scenario with a generator that costs a fraction of k6's CPU per like;
#                        rust: harness/likes.mjs with its like phase in `pulse-hold likes`
#                        (PULSE_HOLD_BIN, else built), a fraction of Node's CPU per like
#   --receiver node|rust fanout: the sockets' receivers are Node workers (default) or
#                        `pulse-hold fanout` processes (PULSE_HOLD_BIN, else built), which cost
#                        a fraction of Node's CPU per frame
#   --keep               keep the database and the work folder (logs are always kept)
# Environment:
#   PULSE_BIN            use this binary instead of building release (cargo build --release -p pulse-server)
#   PULSE_SERVE_ARGS     arguments that make the binary serve (default: none)
#   any variable a script reads (AUTHORS, SOCKETS_PER_VU, P99_MS, ...) is passed to k6;
#   PULSE_* limits (PULSE_DB_POOL_SIZE, PULSE_WORKERS, ...) reach every instance
# Output: ${RESULTS_DIR:-load-tests/results}/<scenario>-<UTC date>.json, k6's summary export plus a "pulse_run"
# object (command, binary, topology, CPU per component, for idle the RSS figures). Exit code:
# k6's (99 when a threshold failed; also when idle's RSS or fanout's frames per CPU-second miss).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib/topology.sh
source "$HERE/lib/topology.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

[[ $# -ge 1 ]] || usage
SCENARIO=$1; shift
case $SCENARIO in
  -h|--help|help) usage ;;
  ceiling) exec "$HERE/ceiling.sh" "$@" ;;
  sockets100k) exec "$HERE/sockets100k.sh" "$@" ;;
esac
COMMAND_LINE="load-tests/run.sh $SCENARIO $*"
INSTANCES="" BACKEND="" RATE_OPT="" DURATION_OPT="" SOCKETS_OPT="" DRIVER=k6 DRIVER_OPT="" RECEIVER_OPT=""
K6_EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --instances) INSTANCES=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --rate) RATE_OPT=$2; shift 2 ;;
    --duration) DURATION_OPT=$2; shift 2 ;;
    --sockets) SOCKETS_OPT=$2; shift 2 ;;
    --driver) DRIVER_OPT=$2; shift 2 ;;
    --receiver) RECEIVER_OPT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --) shift; K6_EXTRA=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
done

case $SCENARIO in
  smoke) SCRIPT=smoke.js; : "${INSTANCES:=1}"; : "${BACKEND:=pg}" ;;
  likes) SCRIPT=likes.js; : "${INSTANCES:=2}"; : "${BACKEND:=pg}" ;;
  embedded) SCRIPT=likes.js; INSTANCES=1; BACKEND=embedded ;;
  fanout) SCRIPT=fanout.mjs; DRIVER=node; : "${INSTANCES:=1}"; : "${BACKEND:=pg}" ;;
  fanout-k6) SCRIPT=fanout.js; : "${INSTANCES:=1}"; : "${BACKEND:=pg}" ;;
  idle) SCRIPT=idle.js; : "${INSTANCES:=2}"; : "${BACKEND:=pg}" ;;
  *) echo "unknown scenario $SCENARIO" >&2; usage ;;
esac
if [[ -n "$DRIVER_OPT" && "$DRIVER_OPT" != "$DRIVER" ]]; then
  [[ ("$DRIVER_OPT" == node || "$DRIVER_OPT" == rust) && ($SCENARIO == likes || $SCENARIO == embedded) ]] \
    || die "--driver $DRIVER_OPT is not available for $SCENARIO"
  SCRIPT=likes.mjs DRIVER=node
  if [[ "$DRIVER_OPT" == rust ]]; then ensure_hold_bin; export LIKE_DRIVER=rust; fi
fi
if [[ -n "$RECEIVER_OPT" ]]; then
  [[ $SCENARIO == fanout ]] || die "--receiver is for the fanout scenario"
  case $RECEIVER_OPT in
    node) ;;
    rust) ensure_hold_bin; export RECEIVER=rust ;;
    *) die "--receiver is node or rust" ;;
  esac
fi
[[ "$BACKEND" == pg || "$BACKEND" == embedded ]] || die "--backend is pg or embedded"
[[ "$BACKEND" == pg || "$INSTANCES" == 1 ]] || die "embedded mode has one instance (SQLite file, in-process fan-out)"

K6_ENV=()
[[ -n "$RATE_OPT" ]] && { if [[ $SCENARIO == fanout* ]]; then K6_ENV+=(-e "LIKE_RATE=$RATE_OPT"); else K6_ENV+=(-e "RATE=$RATE_OPT"); fi; }
[[ -n "$DURATION_OPT" ]] && K6_ENV+=(-e "DURATION=$DURATION_OPT")
[[ -n "$SOCKETS_OPT" ]] && K6_ENV+=(-e "SOCKETS=$SOCKETS_OPT")

results_path "$SCENARIO"
RESULT="$OUT.json"
topo_init
ensure_k6
[[ $DRIVER == node ]] && ensure_harness
ensure_bin
prepare_backend
start_instances "$INSTANCES"

if [[ $SCENARIO == idle ]]; then
  # With 2+ instances idle.js registers through the first and opens sockets on the others only.
  if [[ ${#SERVER_PIDS[@]} -gt 1 ]]; then RSS_PIDS=("${SERVER_PIDS[@]:1}"); else RSS_PIDS=("${SERVER_PIDS[@]}"); fi
  rss_sampler "$WORK/rss.txt" "${RSS_PIDS[@]}"
fi
cpu_sampler "$WORK/cpu.txt"

# Every scenario is bounded by its own DURATION; this is the outer safety net.
K6_LIMIT=${K6_LIMIT:-2400}
set +e
if [[ $DRIVER == node ]]; then
  # The Node harness: same measurement, receivers cheap enough for 100k+ frames/s (README).
  log "node harness/$SCRIPT (limit ${K6_LIMIT}s); summary -> $RESULT"
  # K6_ENV holds "-e NAME=value" pairs: hand them to node as environment variables.
  NODE_ENV_VARS=()
  for ((i = 1; i < ${#K6_ENV[@]}; i += 2)); do NODE_ENV_VARS+=("${K6_ENV[$i]}"); done
  env "${NODE_ENV_VARS[@]}" BASE_URLS="$BASE_URLS" RESULT="$RESULT" \
    timeout -s INT -k 30 "$K6_LIMIT" node "$HERE/harness/$SCRIPT" 2>&1 | tee "$WORK/k6.log"
  K6_RC=${PIPESTATUS[0]}
else
  log "k6 run $SCRIPT (limit ${K6_LIMIT}s); summary -> $RESULT"
  K6_QUIET=()
  [[ -t 1 ]] || K6_QUIET=(-q) # no progress bar in logs
  timeout -s INT -k 30 "$K6_LIMIT" k6 run --no-usage-report "${K6_QUIET[@]}" \
    --summary-export "$RESULT" \
    --summary-trend-stats 'avg,min,med,max,p(90),p(95),p(99),count' \
    -e "BASE_URLS=$BASE_URLS" "${K6_ENV[@]}" "${K6_EXTRA[@]}" "$HERE/$SCRIPT" 2>&1 | tee "$WORK/k6.log"
  K6_RC=${PIPESTATUS[0]}
fi
set -e
log "k6 exit code $K6_RC"

# Instances still alive? (a crash during the run is a finding)
for i in "${!SERVER_PIDS[@]}"; do
  kill -0 "${SERVER_PIDS[$i]}" 2>/dev/null || log "WARNING: instance $((i + 1)) died during the run; see $WORK/pulse-$((i + 1)).log"
done

RSS_JSON=null
if [[ $SCENARIO == idle && -s "$WORK/rss.txt" ]]; then
  PHASE=$(grep -oE 'PHASE setupEnd=[0-9]+ openAt=[0-9]+ heldFrom=[0-9]+ heldTo=[0-9]+ sockets=[0-9]+' "$WORK/k6.log" | tail -1 || true)
  HELD=$(jq -r '.metrics.sockets_held.count // 0' "$RESULT" 2>/dev/null || echo 0)
  if [[ -n "$PHASE" ]]; then
    RSS_JSON=$(awk -v phase="$PHASE" -v held="$HELD" '
      BEGIN { n = split(phase, kv, /[ =]/); for (i = 2; i < n; i += 2) p[kv[i]] = kv[i + 1] }
      { t = $1; kb = $2
        if (t >= p["setupEnd"] + 1000 && t < p["openAt"]) { if (kb > base) base = kb; nb++ }
        if (t >= p["heldFrom"] && t < p["heldTo"]) { h[++nh] = kb }
        if (kb > peak) peak = kb }
      END {
        asort(h); med = nh ? h[int((nh + 1) / 2)] : 0
        per = (held > 0 && nh > 0 && nb > 0) ? (med - base) * 1024 / held : -1
        printf "{\"baseline_kib\":%d,\"held_median_kib\":%d,\"peak_kib\":%d,\"sockets_held\":%d,\"bytes_per_socket\":%.0f,\"baseline_samples\":%d,\"held_samples\":%d}\n", base, med, peak, held, per, nb, nh
      }' "$WORK/rss.txt")
    cp "$WORK/rss.txt" "${RESULT%.json}.rss.txt"
    log "RSS: $RSS_JSON"
  else
    log "WARNING: no PHASE line in the k6 output; RSS per socket not computed"
  fi
fi

# CPU seconds per component during the phase the script names in its "PHASE cpu" line, and
# per unit of work (likes answered 200; for fanout, like_count frames received in that phase).
CPU_JSON=null
CPU_PHASE=$(grep -oE 'PHASE cpu from=[0-9]+ to=[0-9]+' "$WORK/k6.log" | tail -1 || true)
if [[ -n "$CPU_PHASE" && -s "$RESULT" ]]; then
  from=$(sed -E 's/.*from=([0-9]+).*/\1/' <<<"$CPU_PHASE"); to=$(sed -E 's/.*to=([0-9]+).*/\1/' <<<"$CPU_PHASE")
  units=$(jq -r 'if .metrics.like_count_frames_in_phase then .metrics.like_count_frames_in_phase.count else (.metrics.likes_ok.count // 0) end' "$RESULT")
  CPU_JSON=$(cpu_phase "$from" "$to" "$WORK/cpu.txt" "$units")
  cp "$WORK/cpu.txt" "${RESULT%.json}.cpu.txt"
  log "CPU during the measured phase: $CPU_JSON"
fi

# Targets k6 cannot see (they need the server's RSS or CPU): checked here, same exit code 99.
if [[ $SCENARIO == idle && "$RSS_JSON" != null ]]; then
  per=$(jq -r '.bytes_per_socket' <<<"$RSS_JSON")
  if awk -v p="$per" -v t="${RSS_TARGET_BYTES:-10240}" 'BEGIN { exit !(p < 0 || p > t) }'; then
    log "target missed: $per bytes per idle socket > ${RSS_TARGET_BYTES:-10240}"
    [[ $K6_RC -ne 0 ]] || K6_RC=99
  fi
fi
if [[ $SCENARIO == fanout* && "$CPU_JSON" != null ]]; then
  # Frames per CPU-second of the instance holding the sockets (instance 1).
  fps=$(jq -r 'if .pulse1_cpu_s > 0 then (.units / .pulse1_cpu_s | floor) else 0 end' <<<"$CPU_JSON")
  log "fan-out: $fps frames per CPU-second of instance 1"
  if [[ $fps -lt ${FRAMES_PER_CPU_S_TARGET:-100000} ]]; then
    log "target missed: $fps frames per CPU-second < ${FRAMES_PER_CPU_S_TARGET:-100000}"
    [[ $K6_RC -ne 0 ]] || K6_RC=99
  fi
fi

if [[ -s "$RESULT" ]]; then
  META=$(jq -n --arg scenario "$SCENARIO" --arg command "$COMMAND_LINE" --arg date "$STAMP" \
    --arg cores "$(cores)" --arg cpu_model "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" \
    --arg load "$LOAD_BEFORE" --arg backend "$BACKEND" --argjson instances "$INSTANCES" --arg base_urls "$BASE_URLS" \
    --arg bin "$BIN" --argjson k6_exit "$K6_RC" --argjson rss "$RSS_JSON" --argjson cpu "$CPU_JSON" \
    --arg env "$(run_env)" \
    '{scenario: $scenario, command: $command, date: $date, cores: $cores, cpu_model: $cpu_model, backend: $backend,
      instances: $instances, base_urls: $base_urls, bin: $bin, k6_exit: $k6_exit, rss: $rss, cpu: $cpu, env: $env,
      load_before: $load}')
  jq --argjson meta "$META" '. + {pulse_run: $meta}' "$RESULT" >"$RESULT.tmp" && mv "$RESULT.tmp" "$RESULT"
  "$HERE/lib/figures.sh" "$RESULT" || true
  log "results: $RESULT"
else
  log "WARNING: k6 wrote no summary"
fi
exit "$K6_RC"
