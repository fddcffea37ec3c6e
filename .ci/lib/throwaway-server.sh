# shellcheck shell=bash
# throwaway-server.sh: one Pulse server for a test script, sourced (bash). Used by
# .ci/schemathesis.sh and load-tests/smoke.sh.
#
#   BIN=... ; log() { ...; } ; source .ci/lib/throwaway-server.sh ; throwaway_server_start pulse-x
#
# throwaway_server_start <name> starts $BIN on a free 127.0.0.1 port (retrying if another
# process took the port in between) with a fresh temporary PULSE_DATA_DIR (SQLite, in-process
# bus: DATABASE_URL and REDIS_URL are unset for it) and every rate limit off (a script from one
# address is not a person), waits until /readyz answers (up to 60 s: a debug build migrating on
# a busy machine), and sets WORK, PORT, BASE and SERVER_PID. An EXIT trap stops the server
# (SIGTERM, SIGKILL after 15 s), shows the end of its log if the script failed, and removes WORK.

SERVER_PID=""
WORK=""

throwaway_server_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 75); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      log "server pid $SERVER_PID ignored SIGTERM for 15 s; SIGKILL"
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -n "$WORK" && -s "$WORK/server.log" ]]; then
    log "last lines of the server log:"
    tail -n 30 "$WORK/server.log" >&2 || true
  fi
  [[ -z "$WORK" ]] || rm -rf "$WORK"
  exit "$rc"
}

throwaway_server_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

throwaway_server_start() {
  local name=$1 attempt ready
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
  trap throwaway_server_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  for attempt in 1 2 3; do
    PORT=$(throwaway_server_free_port)
    BASE=http://127.0.0.1:$PORT
    mkdir -p "$WORK/data"
    env -u DATABASE_URL -u REDIS_URL PULSE_ADDR="127.0.0.1:$PORT" PULSE_DATA_DIR="$WORK/data" \
      PULSE_RATE_LIKES_PER_MIN=0 PULSE_RATE_COMMENTS_PER_MIN=0 PULSE_RATE_POSTS_PER_MIN=0 \
      PULSE_RATE_FOLLOWS_PER_MIN=0 PULSE_RATE_BLOCKS_PER_MIN=0 PULSE_RATE_SOCKET_CONNECTS_PER_MIN=0 PULSE_RATE_IP_WRITES_PER_MIN=0 \
      PULSE_RATE_REGISTRATIONS_PER_HOUR=0 PULSE_RATE_LOGIN_FAILURES=0 \
      RUST_LOG="${RUST_LOG:-warn}" "$BIN" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    ready=0
    for _ in $(seq 1 300); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      if curl -fsS -o /dev/null --max-time 2 "$BASE/readyz" 2>/dev/null; then ready=1; break; fi
      sleep 0.2
    done
    if [[ $ready == 1 ]]; then
      log "server pid $SERVER_PID ready on $BASE ($BIN)"
      return 0
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then log "server not ready after 60 s"; exit 1; fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    if grep -qi 'address.*in use' "$WORK/server.log"; then
      log "port $PORT was taken, retrying ($attempt)"
      rm -rf "$WORK/data"
      continue
    fi
    log "server exited before it was ready"
    exit 1
  done
  log "could not start the server"
  exit 1
}
