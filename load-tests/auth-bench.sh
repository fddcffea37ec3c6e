#!/usr/bin/env bash
# auth-bench.sh <PULSE_TOKEN_CACHE_SIZE>: server CPU per authenticated GET /api/v1/me (one
# worker, SQLite, wrk -t1 -c8 for 10 s; apt-get install -y wrk). Compares token verification
# with and without the verified-token cache: run it with 0 and with 100000.
set -euo pipefail
size=$1; port=18555; dir=$(mktemp -d)
PULSE_TOKEN_CACHE_SIZE=$size PULSE_ADDR=127.0.0.1:$port PULSE_DATA_DIR=$dir PULSE_WORKERS=1 RUST_LOG=warn \
  PULSE_RATE_IP_WRITES_PER_MIN=0 PULSE_RATE_REGISTRATIONS_PER_HOUR=0 "${PULSE_BIN:-target/release/pulse}" >/dev/null 2>&1 &
pid=$!
for i in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:$port/healthz && break; sleep 0.1; done
tok=$(curl -s http://127.0.0.1:$port/api/v1/auth/register -H 'content-type: application/json' -d '{"username":"bench","password":"correct-horse"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
out=$(wrk -t1 -c8 -d10s -H "authorization: Bearer $tok" http://127.0.0.1:$port/api/v1/me | grep -E "Requests/sec|requests in")
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
reqs=$(echo "$out" | grep "requests in" | awk '{print $1}')
echo "cache=$size $out"
python3 -c "print('server CPU per request: %.1f us' % (($t1-$t0)/100.0/$reqs*1e6))"
kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
