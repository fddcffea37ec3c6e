#!/usr/bin/env bash
# vendor-check.sh: the vendored actix-http (server/vendor/actix-http, see server/vendor/README.md)
# is the one the build uses, is exactly upstream's release plus server/vendor/actix-http.patch,
# and passes its own test suite.
#
#   .ci/vendor-check.sh                     the three checks below, from any folder
#   VENDOR_CHECK_SKIP_TESTS=1 .ci/vendor-check.sh    checks (a) and (b) only (seconds)
#   .ci/vendor-check.sh unpack VERSION DIR  unpacks the pristine actix-http VERSION into
#                                           DIR/actix-http-VERSION (for moving to a new release)
#   .ci/vendor-check.sh make-patch          prints the diff from the pristine release (the
#                                           vendored Cargo.toml's version) to the vendored tree:
#                                           `.ci/vendor-check.sh make-patch >server/vendor/actix-http.patch`
#
# (a) `cargo tree -i actix-http` over the whole workspace (every target platform, --locked) must
#     name exactly one actix-http, the one in server/vendor/actix-http. It fails when the
#     [patch.crates-io] entry of the root Cargo.toml is gone or no longer matches what the
#     dependencies ask for (cargo then silently takes actix-http from the registry).
# (b) The pristine crate of the vendored version is fetched by cargo itself (through a throwaway
#     manifest in a temporary folder, so cargo checks it against the registry's checksum), the
#     patch is applied to it with `patch -p1 --fuzz=0`, and the result must equal the vendored
#     tree file for file (`diff -r`; only a `target` folder in the vendored tree is ignored).
# (c) The vendored crate's own tests: unit tests, the integration tests in tests/ and the doc
#     tests, with its own Cargo.lock (--locked) and its own target folder, target/vendor-actix-http,
#     so the workspace's build is not invalidated. About 6 minutes of compiling on 2 cores the
#     first time, then about 1.5 minutes; the tests use loopback sockets only. Needs OpenSSL's
#     headers (its dev-dependencies build openssl-sys): installed from Debian's packages if
#     missing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VENDOR_DIR=server/vendor/actix-http
PATCH_FILE=server/vendor/actix-http.patch
TARGET_DIR=${VENDOR_CHECK_TARGET_DIR:-$ROOT/target/vendor-actix-http}

# Features for (c): Pulse's own (ws, and compress-gzip through actix-web), plus those that
# tests/test_h2_timer.rs, tests/test_openssl.rs and tests/test_rustls.rs need to be compiled
# at all (http2, openssl, rustls-0_23); the dev-dependencies build OpenSSL and rustls 0.23
# anyway. Not --all-features: rustls 0.20, 0.21 and 0.22 would only add compile time, and the
# brotli and zstd encoders are switched on regardless, by the actix-web dev-dependency.
FEATURES=ws,compress-gzip,http2,openssl,rustls-0_23

# Upstream tests that check upstream's write-buffer retention policy, which the patch replaces
# on purpose (server/vendor/README.md): upstream keeps a drained write buffer of up to 128 KiB
# for the next response and shrinks a larger one to 8 KiB; the patched dispatcher frees it
# whenever it is drained. The three "reused" tests assert the old buffer is still there; the
# three "released" tests make their check through `try_reclaim` on the old allocation, which
# fails when no allocation is left at all. Nothing else is skipped.
SKIPPED_TESTS=(
    h1::dispatcher::buffer_tests::normal_write_buffer_reused_after_flush
    h1::dispatcher::buffer_tests::configured_write_buffer_reused_after_flush
    h1::dispatcher::buffer_tests::small_write_watermark_preserves_normal_buffer
    h1::dispatcher::buffer_tests::oversized_write_buffer_released_after_flush
    h1::dispatcher::buffer_tests::oversized_write_buffer_released_after_partial_write
    h1::dispatcher::buffer_tests::buffer_above_configured_write_watermark_released
)

log() { echo "[vendor-check $(date -u +%H:%M:%S)] $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# The [package] version of the vendored crate (the normalised Cargo.toml of a published crate).
vendored_version() {
    awk '/^\[/ { in_pkg = ($0 == "[package]") }
         in_pkg && /^version = / { gsub(/"/, "", $3); print $3; exit }' "$VENDOR_DIR/Cargo.toml"
}

# unpack_pristine VERSION DIR: DIR/actix-http-VERSION from the registry, as published. cargo
# downloads it into its own cache (checksum checked) through a throwaway manifest in DIR.
unpack_pristine() {
    local version=$1 dir=$2 crate_file='' f host
    mkdir -p "$dir/fetch/src"
    : >"$dir/fetch/src/lib.rs"
    cat >"$dir/fetch/Cargo.toml" <<EOF
[package]
name = "vendor-check-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
actix-http = { version = "=$version", default-features = false }

[workspace]
EOF
    host=$(rustc -vV | sed -n 's/^host: //p')
    cargo fetch --quiet --manifest-path "$dir/fetch/Cargo.toml" --target "$host"
    rm -rf "$dir/fetch"
    for f in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"actix-http-$version.crate"; do
        [[ -f "$f" ]] && crate_file=$f
    done
    [[ -n "$crate_file" ]] || fail "cargo fetch left no actix-http-$version.crate in its cache"
    tar -xzf "$crate_file" -C "$dir"
    [[ -f "$dir/actix-http-$version/Cargo.toml" ]] || fail "$crate_file did not unpack to actix-http-$version/"
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vendor-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

VERSION=$(vendored_version)
[[ -n "$VERSION" ]] || fail "no [package] version in $VENDOR_DIR/Cargo.toml"

case "${1:-check}" in
    check) ;;
    unpack)
        [[ $# -eq 3 ]] || fail "usage: $0 unpack VERSION DIR"
        mkdir -p "$3"
        unpack_pristine "$2" "$3"
        log "unpacked $3/actix-http-$2"
        exit 0
        ;;
    make-patch)
        # a/ is the pristine release, b/ the vendored tree: `patch -p1` in the first gives the second.
        unpack_pristine "$VERSION" "$WORK"
        mv "$WORK/actix-http-$VERSION" "$WORK/a"
        mkdir "$WORK/b"
        (cd "$VENDOR_DIR" && tar --exclude=./target -cf - .) | tar -xf - -C "$WORK/b"
        cd "$WORK"
        rc=0
        git diff --no-index --no-prefix --no-color --no-ext-diff --no-renames a b || rc=$?
        [[ $rc -le 1 ]] || fail "git diff --no-index failed"
        exit 0
        ;;
    *) fail "unknown command '$1' (check, unpack VERSION DIR, make-patch)" ;;
esac

log "vendored actix-http $VERSION"

# --- (a) the build uses the vendored crate -------------------------------------------------
log "(a) cargo tree -i actix-http --workspace --locked"
# stdout only: on a machine whose cargo cache lacks some platform's crates, cargo first prints
# "Downloaded ..." lines on stderr.
tree_err=$(mktemp)
if ! tree=$(cargo tree -i actix-http --workspace --locked --target all -e normal,build,dev --depth 0 2>"$tree_err"); then
    printf '%s\n' "$tree" >&2
    cat "$tree_err" >&2
    rm -f "$tree_err"
    fail "cargo tree -i actix-http failed (more than one actix-http in the graph, or the lockfile is stale)"
fi
rm -f "$tree_err"
expected="actix-http v$VERSION ($ROOT/$VENDOR_DIR)"
if [[ "$tree" != "$expected" ]]; then
    printf '%s\n' "$tree" >&2
    fail "expected exactly '$expected': the [patch.crates-io] entry of the root Cargo.toml is not in effect"
fi
log "(a) ok: $tree"

# --- (b) vendored tree == pristine upstream + patch ----------------------------------------
log "(b) fetching the pristine actix-http $VERSION with cargo"
unpack_pristine "$VERSION" "$WORK"
PATCHED=$WORK/actix-http-$VERSION
log "(b) applying $PATCH_FILE"
if ! patch -p1 --fuzz=0 --forward --batch --no-backup-if-mismatch -s -d "$PATCHED" <"$PATCH_FILE"; then
    fail "$PATCH_FILE does not apply cleanly to actix-http $VERSION"
fi
if ! diff -r -x target "$PATCHED" "$VENDOR_DIR" >"$WORK/tree.diff"; then
    cat "$WORK/tree.diff" >&2
    fail "$VENDOR_DIR differs from actix-http $VERSION + $PATCH_FILE (above: < patched upstream, > vendored)"
fi
log "(b) ok: $VENDOR_DIR == actix-http $VERSION + $PATCH_FILE"

# --- (c) the vendored crate's own tests ----------------------------------------------------
if [[ -n "${VENDOR_CHECK_SKIP_TESTS:-}" ]]; then
    log "(c) skipped (VENDOR_CHECK_SKIP_TESTS is set)"
    exit 0
fi

if ! pkg-config --exists openssl 2>/dev/null; then
    # shellcheck source-path=SCRIPTDIR source=lib/tools.sh
    source "$ROOT/.ci/lib/tools.sh"
    tools_apt_install pkg-config libssl-dev
fi

skip_args=()
for t in "${SKIPPED_TESTS[@]}"; do skip_args+=(--skip "$t"); done

log "(c) cargo test of $VENDOR_DIR (features $FEATURES, target dir $TARGET_DIR)"
# Line tables only, as in the workspace's own dev profile: less debug info to build and link.
CARGO_TARGET_DIR=$TARGET_DIR CARGO_PROFILE_DEV_DEBUG=line-tables-only nice -n "${VENDOR_CHECK_NICE:-10}" \
    cargo test --manifest-path "$VENDOR_DIR/Cargo.toml" --locked --features "$FEATURES" \
    --no-fail-fast -- --exact "${skip_args[@]}"
log "(c) ok (${#SKIPPED_TESTS[@]} upstream buffer-retention tests skipped, see the top of this script)"
