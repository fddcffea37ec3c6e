#!/usr/bin/env bash
# The web demo's whole test: type-check, client unit tests, and the browser test against the
# real server binary. It does not build the server: build it first (cargo build -p pulse-server),
# or point PULSE_BIN at a binary.
#
#   web-demo/test.sh                        # uses <repo>/target/debug/pulse
#   PULSE_BIN=/path/to/pulse web-demo/test.sh
#
# Installs Debian's Chromium (apt-get) when /usr/bin/chromium is missing, makes sure Node.js >= 20
# and npm are on the PATH (.ci/lib/tools.sh: Debian's, or from the npm registry into target/ci-node
# when Debian's is older), and runs `npm ci` when node_modules is missing or was installed from
# another package-lock.json. Exits non-zero when anything fails.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
PULSE_BIN="${PULSE_BIN:-$here/../target/debug/pulse}"
# Absolute, so it survives the cd below; the browser test checks that it exists.
case "$PULSE_BIN" in
  /*) ;;
  *) PULSE_BIN="$PWD/$PULSE_BIN" ;;
esac
export PULSE_BIN
CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
export CHROMIUM_PATH

say() { printf '\n== %s\n' "$*"; }

if [ ! -x "$PULSE_BIN" ]; then
  echo "web-demo/test.sh: no server binary at $PULSE_BIN; build it first: cargo build -p pulse-server" >&2
  exit 1
fi

log() { say "$*"; }
# shellcheck source-path=SCRIPTDIR source=../.ci/lib/tools.sh
source "$here/../.ci/lib/tools.sh"

if [ ! -x "$CHROMIUM_PATH" ]; then
  tools_apt_install chromium
  [ -x "$CHROMIUM_PATH" ] || { echo "chromium did not install at $CHROMIUM_PATH" >&2; exit 1; }
fi
tools_ensure_node

cd "$here"

# npm ci only when needed: the stamp records which lock file (and node) node_modules came from.
stamp=node_modules/.pulse-installed-from
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node --version)"
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund
  printf '%s\n' "$want" >"$stamp"
fi

say "type-check (tsc --checkJs --noEmit, see tsconfig.json; the service worker: tsconfig.sw.json)"
node_modules/.bin/tsc -p .
node_modules/.bin/tsc -p tsconfig.sw.json
echo "tsc: no errors"

say "client unit tests (node --test)"
node --test tests/client.test.mjs

say "browser test against $PULSE_BIN"
node tests/demo.test.mjs
