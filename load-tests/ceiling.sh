#!/usr/bin/env bash
# ceiling.sh: how close do likes through the whole server come to what the database alone allows?
#
#   load-tests/ceiling.sh [--instances N] [--start R] [--step R] [--max R] [--step-duration D]
#                         [--pgbench-clients "4 8 16"] [--pgbench-duration S] [--driver node|rust|k6]
#                         [--keep]
#
# 1. Prepares the topology as run.sh does (PostgreSQL + Redis, release build or PULSE_BIN).
# 2. pgbench ceiling: in a second fresh database (same migrations, seeded with 50 authors,
#    250 posts, 50,000 likers) runs pgbench-like.sql, the statements of one like exactly as the
#    server sends them, with each client count of --pgbench-clients for --pgbench-duration
#    seconds (tables emptied between runs); the best tps is the ceiling. No server runs then.
# 3. Steps: starts N instances (default 2) and runs the likes scenario at --start likes/s, then
#    +--step each time, each for --step-duration, until a step fails: p99 of like request start ->
#    notification frame (notify_latency) above P99_LIMIT (50 ms), or any failed like, missing
#    notification, or a generator that could not keep the rate (like_send_lag p99 > 50 ms).
#    The sustained rate is the last step that passed, as likes/s actually completed.
#    --driver: node (default) runs harness/likes.mjs, rust the same with its like phase in
#    `pulse-hold likes` (PULSE_HOLD_BIN, else built), k6 runs likes.js. Same scenario and checks;
#    k6 costs about 0.7 ms of CPU per like on 2 cores, the Node harness a small fraction of that
#    and the Rust one less again, so with k6 the steps measure k6 as much as the server (RESULTS.md).
# 4. Prints both figures and their ratio (target: sustained >= 0.7 x ceiling) and writes
#    results/ceiling-<date>.json; every step's summary is results/ceiling-<date>-step-<rate>.json.
# PULSE_WORKERS defaults to the cores divided among the instances (at least 1), not one per core.
# Note: pgbench gets both cores to itself (with its own client), while the steps share them
# between the load generator, the instances, Redis and PostgreSQL; on 2 cores the ratio includes that.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib/topology.sh
source "$HERE/lib/topology.sh"

INSTANCES=2 START=200 STEP=100 MAX=20000 STEP_DURATION=20s
PGB_CLIENTS="4 8 16" PGB_DURATION=15 P99_LIMIT=${P99_LIMIT:-50} DRIVER=node
COMMAND_LINE="load-tests/ceiling.sh $*"
while [[ $# -gt 0 ]]; do
  case $1 in
    --instances) INSTANCES=$2; shift 2 ;;
    --start) START=$2; shift 2 ;;
    --step) STEP=$2; shift 2 ;;
    --max) MAX=$2; shift 2 ;;
    --step-duration) STEP_DURATION=$2; shift 2 ;;
    --pgbench-clients) PGB_CLIENTS=$2; shift 2 ;;
    --pgbench-duration) PGB_DURATION=$2; shift 2 ;;
    --driver) DRIVER=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BACKEND=pg
results_path ceiling
# The instances share this machine's cores, so each gets its share of workers unless
# PULSE_WORKERS is set: 2 instances on 2 cores with 1 worker each cost 9-12% less server CPU per
# like than with one worker per core each, and sustained 250 likes/s more (RESULTS.md, ceiling).
PER_INSTANCE=$(( $(nproc 2>/dev/null || echo 1) / INSTANCES ))
export PULSE_WORKERS=${PULSE_WORKERS:-$(( PER_INSTANCE > 0 ? PER_INSTANCE : 1 ))}

[[ $DRIVER == node || $DRIVER == rust || $DRIVER == k6 ]] || die "--driver is node, rust or k6"
topo_init
if [[ $DRIVER == k6 ]]; then ensure_k6; else ensure_harness; fi
if [[ $DRIVER == rust ]]; then ensure_hold_bin; export LIKE_DRIVER=rust; fi
ensure_bin
prepare_backend

# --- pgbench ceiling, in its own database so the steps' database stays untouched ---
PGB_DB=${DB_NAME}_pgbench
PGB_URL=$(create_db "$PGB_DB")
EXTRA_DBS+=("$PGB_DB")
(DATABASE_URL_LOAD=$PGB_URL; run_pulse migrate >"$WORK/migrate-pgbench.log" 2>&1) \
  || { cat "$WORK/migrate-pgbench.log" >&2; die "migrating the pgbench database failed"; }
AUTHORS=50 LIKERS=50000 POSTS=250
psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PGB_DB" -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO users (username, display_name, password_hash, created_at)
  SELECT 'pgb' || g, 'pgb' || g, 'not-a-hash', now() AT TIME ZONE 'UTC' FROM generate_series(1, $AUTHORS + $LIKERS) g;
INSERT INTO posts (author_id, caption, media_key, width, height, created_at)
  SELECT ((g - 1) % $AUTHORS) + 1, 'pgbench', 'pgbench', 8, 8, now() AT TIME ZONE 'UTC' FROM generate_series(1, $POSTS) g;
VACUUM ANALYZE;
SQL
[[ $(psql -h "$PG_HOST" -U "$PG_USER" -d "$PGB_DB" -Atc "SELECT min(id) FROM users") == 1 ]] || die "seeded ids do not start at 1"

BEST_TPS=0 BEST_CLIENTS=0
PSQL_PGB=(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PGB_DB" -q -v ON_ERROR_STOP=1)
for c in $PGB_CLIENTS; do
  # Same starting state for every client count: no likes, no notifications, counters at 0.
  "${PSQL_PGB[@]}" -c "TRUNCATE likes, notifications, notification_groups" \
    -c "UPDATE posts SET like_count = 0, like_seq = 0" -c "UPDATE users SET notification_seq = 0, group_version = 0" -c "VACUUM ANALYZE" >&2
  log "pgbench: $c clients, ${PGB_DURATION}s"
  "$HERE/lib/pgbench-like.sh" >"$WORK/pgbench-like.sql"
  out=$(pgbench -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -n -M prepared -f "$WORK/pgbench-like.sql" \
    -D authors=$AUTHORS -D likers=$LIKERS -D posts=$POSTS -D clients="$c" -D n=0 \
    -c "$c" -j "$(cores)" -T "$PGB_DURATION" "$PGB_DB" 2>&1) \
    || { echo "$out" >&2; die "pgbench failed"; }
  echo "$out" >"$WORK/pgbench-c$c.txt"
  cp "$WORK/pgbench-c$c.txt" "$OUT-pgbench-c$c.txt"
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
  # Every transaction must have been a first like that notified (pairs never repeat).
  read -r nlikes nnotes < <("${PSQL_PGB[@]}" -Atc "SELECT (SELECT count(*) FROM likes), (SELECT count(*) FROM notifications)" | tr '|' ' ')
  log "pgbench: $c clients: $tps tps, average latency $lat ms, failed ${failed:-?}, likes $nlikes, notifications $nnotes"
  [[ "$nlikes" == "$nnotes" ]] || die "pgbench: $nlikes likes but $nnotes notifications: pairs repeated"
  # The pipelined seq subselect must see its own transaction's bump: no recipient's seq twice.
  dup_seqs=$("${PSQL_PGB[@]}" -Atc "SELECT count(*) FROM (SELECT 1 FROM notifications GROUP BY recipient_id, seq HAVING count(*) > 1) d")
  [[ "$dup_seqs" == 0 ]] || die "pgbench: $dup_seqs (recipient, seq) pairs used twice"
  if awk -v a="$tps" -v b="$BEST_TPS" 'BEGIN { exit !(a > b) }'; then BEST_TPS=$tps BEST_CLIENTS=$c; fi
done
log "pgbench ceiling: $BEST_TPS tps ($BEST_CLIENTS clients)"

# --- like steps through the server ---
start_instances "$INSTANCES"
step_seconds=$(echo "$STEP_DURATION" | awk '{ s = $0; t = 0; if (s ~ /^[0-9.]+$/) { print s; exit } while (match(s, /^[0-9.]+[hms]/)) { n = substr(s, 1, RLENGTH - 1); u = substr(s, RLENGTH, 1); t += (u == "h" ? 3600 : u == "m" ? 60 : 1) * n; s = substr(s, RLENGTH + 1) } print t }')
SUSTAINED=0 SUSTAINED_RATE=0 STEPS="[]"
rate=$START
while [[ $rate -le $MAX ]]; do
  f="$OUT-step-$rate.json"
  log "$DRIVER step: $rate likes/s for $STEP_DURATION"
  set +e
  if [[ $DRIVER == k6 ]]; then
    timeout -s INT -k 30 $((step_seconds + 900)) k6 run --no-usage-report -q --summary-export "$f" \
      --summary-trend-stats 'avg,min,med,max,p(90),p(95),p(99),count' \
      -e "BASE_URLS=$BASE_URLS" -e "RATE=$rate" -e "DURATION=$STEP_DURATION" -e "P99_MS=$P99_LIMIT" \
      -e "P50_MS=$P99_LIMIT" -e "MAX_SEND_LAG_P99_MS=50" \
      "$HERE/likes.js" >"$WORK/step-$rate.log" 2>&1
  else
    BASE_URLS=$BASE_URLS RATE=$rate DURATION=$step_seconds P99_MS=$P99_LIMIT P50_MS=$P99_LIMIT \
      MAX_SEND_LAG_P99_MS=50 RESULT=$f timeout -s INT -k 30 $((step_seconds + 900)) \
      node "$HERE/harness/likes.mjs" >"$WORK/step-$rate.log" 2>&1
  fi
  rc=$?
  set -e
  [[ -s "$f" ]] || { tail -20 "$WORK/step-$rate.log" >&2; die "$DRIVER step $rate wrote no summary (exit $rc)"; }
  read -r p50 p99 lagp99 ok failed missing < <(jq -r '[.metrics.notify_latency.med // -1, .metrics.notify_latency["p(99)"] // -1,
      .metrics.like_send_lag["p(99)"] // -1, .metrics.likes_ok.count // 0, .metrics.likes_failed.count // 0,
      (.metrics.notifications_missing.count // 0) + (.metrics.inbox_not_on_socket.count // 0)] | @tsv' "$f")
  achieved=$(awk -v ok="$ok" -v d="$step_seconds" 'BEGIN { printf "%.0f", ok / d }')
  pass=$(awk -v p="$p99" -v lim="$P99_LIMIT" -v f="$failed" -v m="$missing" -v lag="$lagp99" -v ok="$ok" -v r="$rate" -v d="$step_seconds" \
    'BEGIN { print (p >= 0 && p <= lim && f == 0 && m == 0 && lag <= 50 && ok >= r * d) ? "true" : "false" }')
  log "step $rate: notify p50 $p50 ms p99 $p99 ms, send lag p99 $lagp99 ms, $ok ok ($achieved/s), $failed failed, $missing missing -> $pass"
  STEPS=$(jq -c --argjson s "{\"rate\":$rate,\"notify_p50_ms\":$p50,\"notify_p99_ms\":$p99,\"send_lag_p99_ms\":$lagp99,\"likes_ok\":$ok,\"achieved_per_s\":$achieved,\"failed\":$failed,\"missing\":$missing,\"pass\":$pass,\"exit\":$rc}" '. + [$s]' <<<"$STEPS")
  [[ $pass == true ]] || break
  SUSTAINED=$achieved SUSTAINED_RATE=$rate
  rate=$((rate + STEP))
done

RATIO=$(awk -v s="$SUSTAINED" -v c="$BEST_TPS" 'BEGIN { printf "%.2f", (c > 0 ? s / c : 0) }')
echo
echo "sustained likes/s through $INSTANCES instance(s): $SUSTAINED (step $SUSTAINED_RATE/s, like -> notification p99 <= ${P99_LIMIT} ms)"
echo "pgbench ceiling (same SQL, database alone):   $BEST_TPS tps ($BEST_CLIENTS clients)"
echo "ratio: $RATIO (target >= 0.7)"
jq -n --arg command "$COMMAND_LINE" --arg date "$STAMP" --arg cores "$(cores)" --argjson instances "$INSTANCES" --arg driver "$DRIVER" \
  --argjson sustained "$SUSTAINED" --argjson sustained_step "$SUSTAINED_RATE" --argjson pgbench_tps "$BEST_TPS" \
  --argjson pgbench_clients "$BEST_CLIENTS" --argjson ratio "$RATIO" --argjson steps "$STEPS" \
  --arg bin "$BIN" --arg env "$(run_env)" \
  '{command: $command, date: $date, cores: $cores, instances: $instances, driver: $driver, bin: $bin, env: $env, sustained_likes_per_s: $sustained,
    sustained_step: $sustained_step, pgbench_tps: $pgbench_tps, pgbench_clients: $pgbench_clients,
    ratio: $ratio, target_ratio: 0.7, steps: $steps}' >"$OUT.json"
log "results: $OUT.json"
# Like k6 thresholds: a missed target is a failing exit code.
awk -v r="$RATIO" 'BEGIN { exit !(r >= 0.7) }' || { log "target missed: ratio $RATIO < 0.7"; exit 1; }
