#!/usr/bin/env bash
# image-burst.sh BIN PORT [UPLOADS] [SIDE]: UPLOADS (default 40) concurrent uploads of one
# SIDE×SIDE (default 8000) PNG of about 200 KB, or of the file IMAGE=path names, against a fresh
# embedded (SQLite) server on 127.0.0.1:PORT with rate limits off; prints the answers' status
# codes, the burst's duration and the server's RSS before, at its peak (VmHWM) and right after.
# Measures what image decoding costs in memory (RESULTS.md, image burst). Loopback only; every
# upload gives up after 120 s; it stops the server it started.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/topology.sh
source "$HERE/lib/topology.sh"
BIN=$1 PORT=$2 UPLOADS=${3:-40} SIDE=${4:-8000}
D=$(mktemp -d)
BASE=http://127.0.0.1:$PORT

# The PNG: a gradient whose rows repeat. Every row after the first uses PNG's "Up" filter, so
# it is all zeros and 192 MB of RGB pixels deflate to about 200 KB.
python3 - "$SIDE" "$D/big.png" <<'PY'
import struct, sys, zlib
side, path = int(sys.argv[1]), sys.argv[2]
first = b"\0" + bytes(v for x in range(side) for v in (x % 256, (x // 32) % 256, 128))
same = b"\2" + bytes(3 * side)
pack = zlib.compressobj(9)
idat = pack.compress(first) + b"".join(pack.compress(same) for _ in range(side - 1)) + pack.flush()
chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
PY
[ -n "${IMAGE:-}" ] && cp "$IMAGE" "$D/big.png"

PULSE_DATA_DIR=$D PULSE_ADDR=127.0.0.1:$PORT PULSE_RATE_POSTS_PER_MIN=0 PULSE_RATE_IP_WRITES_PER_MIN=0 \
  PULSE_RATE_REGISTRATIONS_PER_HOUR=0 "$BIN" > "$D/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf "$D"' EXIT
wait_for 10 "the server on port $PORT" curl -sf "$BASE/readyz"
TOKEN=$(curl -sf -X POST -H 'content-type: application/json' \
  -d '{"username":"burst","password":"correct-horse-battery"}' "$BASE/api/v1/auth/register" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') || die "registration failed"
before=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
start=$(date +%s%3N)
codes=$(seq 1 "$UPLOADS" | xargs -P "$UPLOADS" -I{} curl -s -o /dev/null -w '%{http_code}\n' --max-time 120 \
  -H "authorization: Bearer $TOKEN" -F "image=@$D/big.png" -F caption={} "$BASE/api/v1/posts" | sort | uniq -c | tr '\n' ' ')
secs=$(awk -v a="$start" -v b="$(date +%s%3N)" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
peak=$(awk '/VmHWM/ {print $2}' /proc/$PID/status); after=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
alive=yes; kill -0 $PID 2>/dev/null || alive="NO (crashed)"
echo "$(basename "$BIN"): $UPLOADS uploads of ${IMAGE:-a ${SIDE}x${SIDE} PNG} ($(stat -c %s "$D/big.png") bytes): codes [$codes] in ${secs}s; RSS KiB before $before, peak $peak, right after $after; server alive: $alive"
kill $PID; wait $PID 2>/dev/null; trap - EXIT; rm -rf "$D"
