#!/usr/bin/env bash
# Pulse load tests: start a whole topology on loopback, run one named scenario, stop everything.
#
#   load-tests/run.sh <scenario> [options] [-- extra k6 arguments]
#
# Scenarios (script, default instances, default backend):
#   smoke     smoke.js   1  pg        20 likes/s for 10 s, CI sized
#   likes     likes.js   2  pg        RATE likes/s (1000) for DURATION (60s), like -> frame latency of every like
#   embedded  likes.js   1  embedded  the same likes scenario on SQLite, no Redis
#   hot-post  likes, Rust driver, 2 pg: every like on one post of one author (AUTHORS=1,
#                        POSTS_PER_AUTHOR=1; RATE x DURATION likers, each registered first),
#                        DURATION 10s by default; compare with `likes` at the same rate
#   hot-recipient  the same with one author's POSTS_PER_AUTHOR (1000) posts: every like goes to
#                        one recipient, spread over their posts
#   fanout    harness/fanout.mjs (Node)  1  pg   SOCKETS sockets (10000) watching one post, 20 likes/s
#   fanout-k6 fanout.js  1  pg        the same in k6 (k6 cannot receive 100k frames/s on 2 cores)
#   ceiling   runs ceiling.sh (its own options)
#   sockets100k  runs sockets100k.sh (its own options)
#   idle      idle.js    2  pg        SOCKETS idle sockets (1000) on instance 2 held for DURATION; RSS per socket
#   overload  overload.js 1 pg        RATE likes/s (3000, about 3x capacity) for DURATION (30s) to one instance:
#                        admitted (200) vs refused (503) and their latencies, goodput vs capacity,
#                        notifications of admitted likes, pulse_requests_shed_total. Capacity first:
#                        likes.js on the same instance at each --sweep rate, --sweep-duration each
# Options:
#   --instances N        server instances (ports 18081.., FIRST_PORT to change)
#   --backend pg|embedded
#   --redis single|cluster  pg: the one Redis (default), or a Redis Cluster of the run's own (6
#                        redis-server processes, 3 masters and 3 replicas; REDIS_CLUSTER_URLS)
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
#   --capacity R         overload: take R likes/s as the capacity instead of measuring it
#   --sweep R1,R2,...    overload: the capacity sweep's rates (250,500,750,1000,1250,1500), in order until
#                        two steps in a row do not hold; capacity = the best goodput of the steps
#                        that held (every like 200 and notified, like p99 <= ADMITTED_P99_MS (100),
#                        send lag p99 <= 50 ms)
#   --sweep-duration D   overload: each sweep step's DURATION (10s)
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
CAPACITY_OPT="" SWEEP_OPT="" SWEEP_DURATION_OPT=""
K6_EXTRA=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --instances) INSTANCES=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --redis) REDIS_MODE=$2; shift 2 ;;
    --rate) RATE_OPT=$2; shift 2 ;;
    --duration) DURATION_OPT=$2; shift 2 ;;
    --sockets) SOCKETS_OPT=$2; shift 2 ;;
    --driver) DRIVER_OPT=$2; shift 2 ;;
    --receiver) RECEIVER_OPT=$2; shift 2 ;;
    --capacity) CAPACITY_OPT=$2; shift 2 ;;
    --sweep) SWEEP_OPT=$2; shift 2 ;;
    --sweep-duration) SWEEP_DURATION_OPT=$2; shift 2 ;;
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
  hot-post|hot-recipient)
    SCRIPT=likes.js; : "${INSTANCES:=2}"; : "${BACKEND:=pg}"; : "${DRIVER_OPT:=rust}"; : "${DURATION_OPT:=10s}"
    export AUTHORS=${AUTHORS:-1}
    if [[ $SCENARIO == hot-post ]]; then export POSTS_PER_AUTHOR=${POSTS_PER_AUTHOR:-1}
    else export POSTS_PER_AUTHOR=${POSTS_PER_AUTHOR:-1000}; fi ;;
  fanout) SCRIPT=fanout.mjs; DRIVER=node; : "${INSTANCES:=1}"; : "${BACKEND:=pg}" ;;
  fanout-k6) SCRIPT=fanout.js; : "${INSTANCES:=1}"; : "${BACKEND:=pg}" ;;
  idle) SCRIPT=idle.js; : "${INSTANCES:=2}"; : "${BACKEND:=pg}" ;;
  overload) SCRIPT=overload.js; : "${INSTANCES:=1}"; : "${BACKEND:=pg}" ;;
  *) echo "unknown scenario $SCENARIO" >&2; usage ;;
esac
if [[ -n "$DRIVER_OPT" && "$DRIVER_OPT" != "$DRIVER" ]]; then
  [[ ("$DRIVER_OPT" == node || "$DRIVER_OPT" == rust) && ($SCENARIO == likes || $SCENARIO == embedded || $SCENARIO == hot-*) ]] \
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
[[ -z "$CAPACITY_OPT$SWEEP_OPT$SWEEP_DURATION_OPT" || $SCENARIO == overload ]] || die "--capacity, --sweep and --sweep-duration are for the overload scenario"
[[ "$BACKEND" == pg || "$BACKEND" == embedded ]] || die "--backend is pg or embedded"
[[ "$REDIS_MODE" == single || ("$REDIS_MODE" == cluster && "$BACKEND" == pg) ]] || die "--redis is single or cluster (cluster needs --backend pg)"
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
[[ $BACKEND == pg ]] && pg_sampler "$WORK/pg.txt"

# Every scenario is bounded by its own DURATION; this is the outer safety net.
K6_LIMIT=${K6_LIMIT:-2400}

# overload: the capacity to compare goodput with, measured now on this instance (or --capacity),
# the shed counter before the overload phase, and /metrics sampled every second.
OVERLOAD_JSON=null
if [[ $SCENARIO == overload ]]; then
  SHED_BEFORE=$(shed_total)
  metrics_sampler "$WORK/metrics.txt"
  CAPACITY_STEPS=()
  if [[ -n "$CAPACITY_OPT" ]]; then
    CAPACITY=$CAPACITY_OPT CAPACITY_HOW="given with --capacity"
  else
    SWEEP=${SWEEP_OPT:-250,500,750,1000,1250,1500}
    SWEEP_DURATION=${SWEEP_DURATION_OPT:-10s}
    SWEEP_S=$(to_seconds "$SWEEP_DURATION")
    CAPACITY=0 CAPACITY_HOW="best goodput of the sweep steps that held: likes.js on this instance, $SWEEP_DURATION per step, rates $SWEEP"
    FAILED_IN_A_ROW=0
    for r in ${SWEEP//,/ }; do
      f="$OUT.capacity-$r.json"
      log "capacity step: likes.js at $r likes/s for $SWEEP_DURATION (log $WORK/capacity-$r.log)"
      set +e
      timeout -s INT -k 30 "$K6_LIMIT" k6 run --no-usage-report -q --summary-export "$f" \
        --summary-trend-stats 'avg,min,med,max,p(90),p(95),p(99),count' \
        -e "BASE_URLS=$BASE_URLS" -e "RATE=$r" -e "DURATION=$SWEEP_DURATION" \
        -e P50_MS=1000000 -e P99_MS=1000000 -e MAX_SEND_LAG_P99_MS=1000000 \
        "$HERE/likes.js" >"$WORK/capacity-$r.log" 2>&1
      set -e
      step=$(jq -c --argjson rate "$r" --argjson secs "$SWEEP_S" --argjson p99max "${ADMITTED_P99_MS:-100}" '
        def c(n): .metrics[n].count // 0;
        { rate: $rate, likes_ok: c("likes_ok"), goodput: (c("likes_ok") / $secs * 10 | round / 10),
          failed: c("likes_failed"), missing: c("notifications_missing"),
          like_p99_ms: .metrics.like_duration["p(99)"], notify_p99_ms: .metrics.notify_latency["p(99)"],
          send_lag_p99_ms: .metrics.like_send_lag["p(99)"] }
        | .held = (.likes_ok >= ($rate * $secs | floor) and .failed == 0 and .missing == 0
                   and (.like_p99_ms // 1e9) <= $p99max and (.send_lag_p99_ms // 1e9) <= 50)' "$f" 2>/dev/null \
        || echo "{\"rate\":$r,\"held\":false,\"error\":\"no summary\"}")
      # CPU per like answered 200 of each component during the step (the sampler runs throughout).
      ph=$(grep -oE 'PHASE cpu from=[0-9]+ to=[0-9]+' "$WORK/capacity-$r.log" | tail -1 || true)
      if [[ -n $ph ]]; then
        ph_from=$(sed -E 's/.*from=([0-9]+).*/\1/' <<<"$ph") ph_to=$(sed -E 's/.*to=([0-9]+).*/\1/' <<<"$ph")
        step_cpu=$(cpu_phase "$ph_from" "$ph_to" "$WORK/cpu.txt" "$(jq -r '.likes_ok // 0' <<<"$step")")
        step=$(jq -c --argjson cpu "${step_cpu:-null}" '. + {cpu: $cpu}' <<<"$step" 2>/dev/null || echo "$step")
      fi
      log "capacity step: $step"
      CAPACITY_STEPS+=("$step")
      if [[ $(jq -r .held <<<"$step") == true ]]; then
        FAILED_IN_A_ROW=0
        CAPACITY=$(jq -rn --argjson a "$CAPACITY" --argjson b "$(jq .goodput <<<"$step")" '[$a, $b] | max')
      else
        FAILED_IN_A_ROW=$((FAILED_IN_A_ROW + 1))
        [[ $FAILED_IN_A_ROW -lt 2 ]] || break
      fi
    done
    [[ "$CAPACITY" != 0 ]] || log "WARNING: no sweep step held; goodput is not compared with a capacity"
    [[ $(jq -r .held <<<"${CAPACITY_STEPS[-1]}") != true ]] \
      || log "WARNING: the highest sweep step held: the capacity is at least $CAPACITY (add higher --sweep rates)"
  fi
  log "capacity: $CAPACITY likes/s ($CAPACITY_HOW)"
  K6_ENV+=(-e "CAPACITY=$CAPACITY")
  SHED_BEFORE_OVERLOAD=$(shed_total)
  like_histogram_snapshot "$WORK/metrics-before-overload.txt"
fi
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

if [[ $SCENARIO == overload && -s "$RESULT" ]]; then
  SHED_END=$(shed_total)
  like_histogram_snapshot "$WORK/metrics-end.txt"
  SERVER_VIEW=$(like_histogram "$WORK/metrics-before-overload.txt" "$WORK/metrics-end.txt")
  jq -e . >/dev/null 2>&1 <<<"$SERVER_VIEW" || SERVER_VIEW=null
  cp "$WORK/metrics-end.txt" "${RESULT%.json}.metrics-end.txt" 2>/dev/null || true
  DURATION_S=$(to_seconds "${DURATION_OPT:-${DURATION:-30s}}")
  STORED=$(grep -oE 'teardown: [0-9]+ likes stored' "$WORK/k6.log" | grep -oE '[0-9]+' | tail -1 || true)
  QUEUED_MAX=$(awk '$3 != "-" && $3 != "" { seen = 1; if ($3 + 0 > m) m = $3 + 0 } END { print seen ? m + 0 : "null" }' "$WORK/metrics.txt" 2>/dev/null || echo null)
  OVERLOAD_JSON=$(jq -c --argjson capacity "$CAPACITY" --arg how "$CAPACITY_HOW" \
    --argjson steps "$(printf '%s\n' "${CAPACITY_STEPS[@]}" | jq -s -c .)" --argjson secs "$DURATION_S" \
    --arg shed_before "$SHED_BEFORE" --arg shed_pre "$SHED_BEFORE_OVERLOAD" --arg shed_end "$SHED_END" \
    --arg stored "$STORED" --argjson queued_max "${QUEUED_MAX:-null}" --argjson server "$SERVER_VIEW" '
    def c(n): .metrics[n].count // 0;
    def t(n; p): if (.metrics[n].count // 0) > 0 then .metrics[n][p] else null end;
    def num(s): if s == "" then null else (s | tonumber) end;
    { capacity: $capacity, capacity_method: $how, capacity_steps: $steps, duration_s: $secs,
      offered: (c("likes_sent") + c("likes_dropped")), sent: c("likes_sent"),
      dropped: c("likes_dropped"), dropped_late: (.metrics["likes_dropped{cause:late}"].count // 0),
      dropped_pool: (.metrics["likes_dropped{cause:pool}"].count // 0),
      k6_dropped_iterations: c("dropped_iterations"), send_lag_p99_ms: t("like_send_lag"; "p(99)"),
      admitted: c("likes_ok"), admitted_p50_ms: t("like_admitted_duration"; "med"),
      admitted_p95_ms: t("like_admitted_duration"; "p(95)"), admitted_p99_ms: t("like_admitted_duration"; "p(99)"),
      refused: c("likes_refused"), refused_p50_ms: t("like_refused_duration"; "med"),
      refused_p99_ms: t("like_refused_duration"; "p(99)"), refused_without_retry_after: c("refusals_without_retry_after"),
      other_p50_ms: t("like_other_duration"; "med"), other_p99_ms: t("like_other_duration"; "p(99)"),
      other_status: c("likes_other_status"), other_5xx: c("likes_other_5xx"),
      transport_errors: c("likes_transport_errors"), retried: c("likes_retried"), unanswered: c("likes_unanswered"),
      goodput: (c("likes_ok") / $secs * 10 | round / 10),
      goodput_share: (if $capacity > 0 then (c("likes_ok") / $secs / $capacity * 1000 | round / 1000) else null end),
      notifications_arrived: c("notify_latency"), frames_received: c("notifications_received"), notify_p50_ms: t("notify_latency"; "med"),
      notify_p99_ms: t("notify_latency"; "p(99)"), notifications_missing: c("notifications_missing"),
      notifications_late: c("notifications_late"), notifications_for_refused: c("notifications_for_refused"),
      notifications_for_failed: c("notifications_for_failed"),
      notifications_unexpected: c("notifications_unexpected"), likes_stored: num($stored),
      shed_total_end: num($shed_end), shed_before_sweep: num($shed_before),
      shed_in_overload: (if $shed_end == "" or $shed_pre == "" then null else (($shed_end | tonumber) - ($shed_pre | tonumber)) end),
      queued_max: $queued_max, server_likes_by_status: $server }' "$RESULT")
  cp "$WORK/metrics.txt" "${RESULT%.json}.metrics.txt" 2>/dev/null || true
  log "overload: $OVERLOAD_JSON"
fi

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
CPU_JSON=null WRITES_JSON=null
CPU_PHASE=$(grep -oE 'PHASE cpu from=[0-9]+ to=[0-9]+' "$WORK/k6.log" | tail -1 || true)
if [[ -n "$CPU_PHASE" && -s "$RESULT" ]]; then
  from=$(sed -E 's/.*from=([0-9]+).*/\1/' <<<"$CPU_PHASE"); to=$(sed -E 's/.*to=([0-9]+).*/\1/' <<<"$CPU_PHASE")
  units=$(jq -r 'if .metrics.like_count_frames_in_phase then .metrics.like_count_frames_in_phase.count else (.metrics.likes_ok.count // 0) end' "$RESULT")
  CPU_JSON=$(cpu_phase "$from" "$to" "$WORK/cpu.txt" "$units")
  cp "$WORK/cpu.txt" "${RESULT%.json}.cpu.txt"
  log "CPU during the measured phase: $CPU_JSON"
  if [[ -s "$WORK/pg.txt" ]]; then
    WAL_JSON=$(counter_phase "$from" "$to" "$WORK/pg.txt" "$units")
    likes_ok=$(jq -r '.metrics.likes_ok.count // 0' "$RESULT")
    TABLES_JSON=$(table_writes "$DB_NAME" "$likes_ok")
    WRITES_JSON=$(jq -nc --argjson wal "$WAL_JSON" --argjson tables "${TABLES_JSON:-null}" --argjson likes "$likes_ok" \
      '{wal: $wal, tables_whole_run: $tables, likes_ok: $likes}')
    cp "$WORK/pg.txt" "${RESULT%.json}.pg.txt"
    log "PostgreSQL writes: $WRITES_JSON"
  fi
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
    --arg load "$LOAD_BEFORE" --arg backend "$BACKEND" --arg redis "$REDIS_MODE" --argjson instances "$INSTANCES" --arg base_urls "$BASE_URLS" \
    --arg bin "$BIN" --argjson k6_exit "$K6_RC" --argjson rss "$RSS_JSON" --argjson cpu "$CPU_JSON" --argjson writes "$WRITES_JSON" \
    --argjson overload "$OVERLOAD_JSON" \
    --arg env "$(run_env)" \
    '{scenario: $scenario, command: $command, date: $date, cores: $cores, cpu_model: $cpu_model, backend: $backend,
      redis: $redis, instances: $instances, base_urls: $base_urls, bin: $bin, k6_exit: $k6_exit, rss: $rss, cpu: $cpu, postgres_writes: $writes, env: $env,
      load_before: $load} + (if $overload == null then {} else {overload: $overload} end)')
  jq --argjson meta "$META" '. + {pulse_run: $meta}' "$RESULT" >"$RESULT.tmp" && mv "$RESULT.tmp" "$RESULT"
  "$HERE/lib/figures.sh" "$RESULT" || true
  log "results: $RESULT"
else
  log "WARNING: k6 wrote no summary"
fi
exit "$K6_RC"
