#!/usr/bin/env bash
# audit.sh: supply-chain gates on the workspace's Cargo.lock.
#
#   .ci/audit.sh
#
# 1. cargo-deny (config: .ci/deny.toml): licenses (permissive allow-list), bans (no `*`
#    requirements; duplicate versions are listed as warnings) and sources (crates.io only).
#    Needs no advisory database, so it runs anywhere crates.io (or the local cargo cache) is.
# 2. cargo-audit: the RustSec advisories (known vulnerabilities, yanked and unmaintained
#    crates). It needs the advisory database, a git repository on GitHub. When it cannot be
#    fetched this script FAILS (exit 3) and says so, rather than passing without having looked:
#    - CARGO_AUDIT_DB=/path/to/advisory-db uses a local copy instead (no fetch);
#    - a copy fetched earlier (~/.cargo/advisory-db) is used, with a warning giving its age;
#    - AUDIT_ADVISORIES=skip skips step 2 explicitly (a loud warning, exit 0 if step 1 passed).
# Installs cargo-deny and cargo-audit (pinned, `cargo install --locked`) when missing: about 4
# and 9 minutes of compiling on 2 cores, once. Each check then takes a second or two.
set -euo pipefail

CARGO_DENY_VERSION=0.20.2
CARGO_AUDIT_VERSION=0.22.2

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { echo "[audit $(date -u +%H:%M:%S)] $*" >&2; }

ensure_tool() { # ensure_tool <crate> <version> <command that prints the version>
  local crate=$1 version=$2
  shift 2
  if ! "$@" 2>/dev/null | grep -qF "$version"; then
    log "installing $crate $version (cargo install --locked)"
    cargo install --locked --quiet "$crate" --version "$version"
  fi
}

ensure_tool cargo-deny "$CARGO_DENY_VERSION" cargo deny --version
log "cargo deny: licenses, bans, sources"
# Errors only: the duplicate-version warnings are a long list, and not a gate (see them with
# `cargo deny --config .ci/deny.toml check bans`).
cargo deny --color never --log-level error --locked --config .ci/deny.toml check \
  --hide-inclusion-graph licenses bans sources

if [[ "${AUDIT_ADVISORIES:-}" == skip ]]; then
  log "WARNING: AUDIT_ADVISORIES=skip: the RustSec advisories were NOT checked"
  exit 0
fi

ensure_tool cargo-audit "$CARGO_AUDIT_VERSION" cargo audit --version
if [[ -n "${CARGO_AUDIT_DB:-}" ]]; then
  log "cargo audit against the local advisory database $CARGO_AUDIT_DB"
  exec cargo audit --db "$CARGO_AUDIT_DB" --no-fetch --deny warnings
fi

log "cargo audit (fetches the RustSec advisory database)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
cargo audit --deny warnings 2>&1 | tee "$out" >&2 || status=${PIPESTATUS[0]}
if [[ $status -eq 0 ]]; then
  exit 0
fi
if ! grep -q "couldn't fetch advisory database" "$out"; then
  log "cargo audit found advisories (above)"
  exit "$status"
fi

default_db=${CARGO_HOME:-$HOME/.cargo}/advisory-db
if [[ -d "$default_db/crates" ]]; then
  age=$(( ( $(date +%s) - $(stat -c %Y "$default_db") ) / 86400 ))
  log "WARNING: could not update the advisory database; using the copy in $default_db," \
    "last written $age day(s) ago"
  exec cargo audit --no-fetch --deny warnings
fi

cat >&2 <<EOF

==========================================================================================
 ADVISORIES NOT CHECKED: cargo-audit could not fetch the RustSec advisory database
 (https://github.com/RustSec/advisory-db.git), and there is no local copy.
 Licenses, bans and sources passed; known vulnerabilities were NOT looked for.
 Fix: run where GitHub is reachable, or set CARGO_AUDIT_DB=/path/to/advisory-db (a clone),
 or accept the gap explicitly with AUDIT_ADVISORIES=skip.
==========================================================================================
EOF
exit 3
