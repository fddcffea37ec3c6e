#!/usr/bin/env bash
# try-it.sh: the README's walk-through against a running Pulse server, live socket included.
#
#   cargo run --release -p pulse-server        # in another terminal, or any running server
#   scripts/try-it.sh                          # BASE_URL=http://127.0.0.1:8080 by default
#   BASE_URL=http://127.0.0.1:9000 scripts/try-it.sh
#
# It registers two new users (fresh names every run, so it can run again and again), makes a
# tiny PNG itself, lets the second user follow the first, posts the photo as the first, opens
# the first user's live socket (POST /auth/ws-ticket, then GET /api/v1/ws?ticket=...), likes
# the photo as the second user, prints the notification frame the socket receives, and lists
# the first user's notifications. Every request's HTTP status is checked: anything unexpected
# stops the script with the server's answer and a non-zero exit.
#
# Needs curl, and Node.js >= 20 for the socket (scripts/watch.mjs uses the WebSocket built into
# Node: by default from Node 22, with --experimental-websocket on Node 20). Uses jq for JSON
# when it is installed, Node otherwise.
set -euo pipefail

BASE_URL=${BASE_URL:-http://127.0.0.1:8080}
BASE_URL=${BASE_URL%/}
API=$BASE_URL/api/v1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { printf 'try-it: %s\n' "$*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }

command -v curl >/dev/null || die "curl is missing (Debian: apt-get install curl)"
command -v node >/dev/null ||
  die "Node.js >= 20 is needed for the live socket (Debian: apt-get install nodejs; see README)"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[[ $NODE_MAJOR -ge 20 ]] ||
  die "Node.js $(node --version) is too old for the live socket: Node >= 20 is needed (see README)"
if node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)'; then
  NODE=(node)
elif node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
  NODE=(node --experimental-websocket)
else
  die "Node.js $(node --version) has no WebSocket client, even with --experimental-websocket"
fi

# json FILTER: reads JSON on stdin, prints one field. FILTER is a jq path such as .user.id.
if command -v jq >/dev/null; then
  json() { jq -er "$1"; }
else
  json() {
    node -e '
      let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
        let v = JSON.parse(s);
        for (const k of process.argv[1].split(".").filter(Boolean)) v = v == null ? v : v[k];
        if (v === undefined || v === null) process.exit(1);
        console.log(typeof v === "object" ? JSON.stringify(v) : String(v));
      });' "$1"
  }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pulse-try-it.XXXXXX")
WATCHER=""
cleanup() {
  [[ -z "$WATCHER" ]] || kill "$WATCHER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# call METHOD PATH STATUS [curl arguments...]: prints the response body; stops the script with
# the server's answer unless the status is STATUS.
call() {
  local method=$1 path=$2 want=$3 status
  shift 3
  status=$(curl -sS -o "$WORK/body" -w '%{http_code}' -X "$method" "$API$path" "$@") ||
    die "$method $API$path: no answer (is the server running? cargo run --release -p pulse-server)"
  if [[ "$status" != "$want" ]]; then
    printf 'try-it: %s %s answered %s, expected %s:\n' "$method" "$path" "$status" "$want" >&2
    cat "$WORK/body" >&2
    echo >&2
    exit 1
  fi
  cat "$WORK/body"
}

step "is a server there? GET $BASE_URL/readyz"
curl -fsS "$BASE_URL/readyz" >/dev/null ||
  die "no ready server at $BASE_URL: start one with cargo run --release -p pulse-server, or set BASE_URL"
echo "ready"

RUN=$(date +%s)$((RANDOM % 1000))
ALICE=alice_$RUN
BOB=bob_$RUN
PASSWORD=correct-horse-battery

step "register $ALICE and $BOB: POST /api/v1/auth/register (201)"
REPLY=$(call POST /auth/register 201 -H 'content-type: application/json' \
  -d "{\"username\":\"$ALICE\",\"password\":\"$PASSWORD\"}")
A_TOKEN=$(json .token <<<"$REPLY")
A_ID=$(json .user.id <<<"$REPLY")
REPLY=$(call POST /auth/register 201 -H 'content-type: application/json' \
  -d "{\"username\":\"$BOB\",\"password\":\"$PASSWORD\"}")
B_TOKEN=$(json .token <<<"$REPLY")
echo "$ALICE is user $A_ID; both have a token"

step "$BOB follows $ALICE: PUT /api/v1/users/$A_ID/follow (200)"
call PUT "/users/$A_ID/follow" 200 -H "authorization: Bearer $B_TOKEN" |
  json .follower_count | sed "s/^/$ALICE's followers: /"

step "$ALICE posts a photo: POST /api/v1/posts, multipart image + caption (201)"
# A 4x4 PNG, made here so the walk-through needs no file of yours.
base64 -d >"$WORK/photo.png" <<'PNG'
iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAMElEQVR42g3HQQEAMAwCMeRUTuUgoiIQgb/b8ouwOBFRCQ83ZOj8LLdk6f6YMzH1A9LSHRFuCj8kAAAAAElFTkSuQmCC
PNG
REPLY=$(call POST /posts 201 -H "authorization: Bearer $A_TOKEN" \
  -F caption='Sunset' -F "image=@$WORK/photo.png;type=image/png")
POST_ID=$(json .id <<<"$REPLY")
echo "post $POST_ID, image at $BASE_URL$(json .image_url <<<"$REPLY")"

step "$ALICE opens her live socket: POST /api/v1/auth/ws-ticket, then GET /api/v1/ws?ticket=..."
TICKET=$(call POST /auth/ws-ticket 200 -H "authorization: Bearer $A_TOKEN" | json .ticket)
case $BASE_URL in
  https://*) WS_URL="wss://${BASE_URL#https://}/api/v1/ws?ticket=$TICKET" ;;
  *) WS_URL="ws://${BASE_URL#http://}/api/v1/ws?ticket=$TICKET" ;;
esac
"${NODE[@]}" "$HERE/watch.mjs" "$WS_URL" 1 30 >"$WORK/frames" 2>"$WORK/watch.err" &
WATCHER=$!
for _ in $(seq 1 100); do
  grep -q '"type":"hello"' "$WORK/frames" 2>/dev/null && break
  kill -0 "$WATCHER" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '"type":"hello"' "$WORK/frames" 2>/dev/null; then
  cat "$WORK/watch.err" >&2
  die "the socket did not say hello within 10 s"
fi
echo "socket open: $(head -n 1 "$WORK/frames")"

step "$BOB likes the photo: PUT /api/v1/posts/$POST_ID/like (200)"
call PUT "/posts/$POST_ID/like" 200 -H "authorization: Bearer $B_TOKEN"
echo

step "what $ALICE's socket received"
if ! wait "$WATCHER"; then
  WATCHER=""
  cat "$WORK/frames" "$WORK/watch.err" >&2
  die "no notification frame arrived on the socket"
fi
WATCHER=""
FRAME=$(grep '"type":"notification"' "$WORK/frames" | head -n 1)
echo "$FRAME"
echo "-> live: \"$(json .notification.text <<<"$FRAME")\""

step "$ALICE's inbox: GET /api/v1/notifications (200)"
REPLY=$(call GET /notifications 200 -H "authorization: Bearer $A_TOKEN")
if command -v jq >/dev/null; then
  jq -r '.items[] | "  #\(.id) \(.kind): \(.text)"' <<<"$REPLY"
else
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e 'const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const n of p.items) console.log(`  #${n.id} ${n.kind}: ${n.text}`);' <<<"$REPLY"
fi
echo "unread: $(json .unread_count <<<"$REPLY")"

step "done"
echo "Try the same in a browser: $BASE_URL/two (log in as $ALICE and $BOB, password $PASSWORD)."
