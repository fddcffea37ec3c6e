#!/usr/bin/env bash
# regburst.sh BIN PORT: 400 registrations from 32 concurrent clients (curl) against a fresh
# embedded (SQLite) server on 127.0.0.1:PORT; prints the answers' status codes, the burst's
# duration and the server's RSS before, at its peak (VmHWM), right after and 15 s after.
# Measures what password hashing costs in memory (RESULTS.md, registration burst). Loopback
# only; it stops the server it started.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/topology.sh
source "$HERE/lib/topology.sh"
BIN=$1 PORT=$2; D=$(mktemp -d)
PULSE_DATA_DIR=$D PULSE_ADDR=127.0.0.1:$PORT PULSE_RATE_REGISTRATIONS_PER_HOUR=0 PULSE_RATE_IP_WRITES_PER_MIN=0 $BIN > $D/log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
wait_for 10 "the server on port $PORT" curl -sf "http://127.0.0.1:$PORT/readyz"
before=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
start=$(date +%s%3N)
codes=$(seq 1 400 | xargs -P 32 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'content-type: application/json' -d '{"username":"reg{}x","password":"correct-horse-battery"}' http://127.0.0.1:$PORT/api/v1/auth/register | sort | uniq -c | tr '\n' ' ')
secs=$(awk -v a="$start" -v b="$(date +%s%3N)" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
peak=$(awk '/VmHWM/ {print $2}' /proc/$PID/status); after=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
sleep 15; later=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
echo "$(basename $BIN): codes [$codes] in ${secs}s; RSS KiB before $before, peak $peak, right after $after, 15 s later $later"
kill $PID; wait $PID 2>/dev/null; trap - EXIT; rm -rf $D
