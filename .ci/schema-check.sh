#!/usr/bin/env bash
# schema-check.sh: schema/src/schema.rs must be what `diesel print-schema` prints for the
# PostgreSQL migrations (it is generated, never hand-edited).
#
#   .ci/schema-check.sh
#
# - installs diesel_cli $DIESEL_CLI_VERSION (PostgreSQL only; libpq-dev from apt when pg_config is
#   missing) when that version is not on the PATH: about 3 minutes of compiling on 2 cores, once;
# - creates a scratch database on $SCHEMA_CHECK_DATABASE_URL's server (default
#   postgres://postgres@127.0.0.1:5432, as .ci/test.sh leaves it), runs every migration of
#   schema/migrations/postgres into it with `diesel migration run`, prints the schema with the
#   repo's diesel.toml settings, and drops the database again;
# - compares the output with schema/src/schema.rs, ignoring trailing whitespace only, and on a
#   difference prints the diff and exits 1. To accept the generated file:
#   SCHEMA_CHECK_WRITE=1 .ci/schema-check.sh   (then `cargo check -p pulse-schema -p pulse-server`).
# It never writes schema/src/schema.rs otherwise (the migrations run from a copy of diesel.toml
# that names no output file).
set -euo pipefail

DIESEL_CLI_VERSION=2.3.14

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SERVER_URL=${SCHEMA_CHECK_DATABASE_URL:-${PULSE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}
SERVER_URL=${SERVER_URL%/*} # drop the database name: the scratch one replaces it
SCHEMA_RS=schema/src/schema.rs

log() { echo "[schema-check $(date -u +%H:%M:%S)] $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! diesel --version 2>/dev/null | grep -qF "$DIESEL_CLI_VERSION"; then
  if ! command -v pg_config >/dev/null; then
    log "installing libpq-dev (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpq-dev >/dev/null
  fi
  log "installing diesel_cli $DIESEL_CLI_VERSION (cargo install --locked, postgres only)"
  cargo install --locked --quiet diesel_cli --version "$DIESEL_CLI_VERSION" \
    --no-default-features --features postgres
fi
command -v psql >/dev/null || { log "psql is missing (apt-get install postgresql-client)"; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pulse-schema-check.XXXXXX")
DB=pulse_schema_check_$$_$RANDOM
created=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$created" ]]; then
    psql "$SERVER_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
      log "could not drop the scratch database $DB"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

psql "$SERVER_URL/postgres" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE $DB" >/dev/null
created=1
DB_URL=$SERVER_URL/$DB

# diesel.toml with the output file removed (so nothing is written) and the migrations directory
# made absolute (so the copy works from anywhere); every other print_schema setting is kept.
sed -e '/^file[[:space:]]*=/d' \
  -e "s|^dir[[:space:]]*=[[:space:]]*\"\\([^/][^\"]*\\)\"|dir = \"$ROOT/\\1\"|" \
  diesel.toml >"$WORK/diesel.toml"

log "running schema/migrations/postgres into the scratch database $DB"
diesel migration run --database-url "$DB_URL" --config-file "$WORK/diesel.toml" >&2
diesel print-schema --database-url "$DB_URL" --config-file "$WORK/diesel.toml" >"$WORK/schema.rs"

strip() { sed -e 's/[[:space:]]*$//' "$1"; }
if diff -u --label "$SCHEMA_RS" --label "diesel print-schema" \
  <(strip "$SCHEMA_RS") <(strip "$WORK/schema.rs") >"$WORK/schema.diff"; then
  log "$SCHEMA_RS matches the migrations"
  exit 0
fi
if [[ "${SCHEMA_CHECK_WRITE:-}" == 1 ]]; then
  cp "$WORK/schema.rs" "$SCHEMA_RS"
  log "wrote the generated schema to $SCHEMA_RS; now run: cargo check -p pulse-schema -p pulse-server"
  exit 0
fi
cat "$WORK/schema.diff" >&2
log "$SCHEMA_RS differs from what the migrations generate (diff above: - committed, + generated)."
log "If the migrations are right, regenerate it: SCHEMA_CHECK_WRITE=1 .ci/schema-check.sh"
exit 1
