#!/usr/bin/env bash
# auth-bench.sh <PULSE_TOKEN_CACHE_SIZE> [PATH...]: server CPU per authenticated GET of each PATH
# (default /api/v1/me), one worker, wrk -t1 -c8 for 10 s each (apt-get install -y wrk).
# Compares token verification with and without the verified-token cache: run it with 0 and with
# 100000. SQLite unless DATABASE_URL is set (a PostgreSQL database this script migrates; REDIS_URL
# too if set), e.g. for what one query costs the server: `auth-bench.sh 100000 /healthz /api/v1/me`.
set -euo pipefail
size=$1; shift
paths=("${@:-/api/v1/me}")
port=18555; dir=$(mktemp -d)
bin=${PULSE_BIN:-target/release/pulse}
export PULSE_TOKEN_CACHE_SIZE=$size PULSE_ADDR=127.0.0.1:$port PULSE_DATA_DIR=$dir PULSE_WORKERS=1 \
  RUST_LOG=warn PULSE_RATE_IP_WRITES_PER_MIN=0 PULSE_RATE_REGISTRATIONS_PER_HOUR=0
[[ -z "${DATABASE_URL:-}" ]] || "$bin" migrate >/dev/null 2>&1
"$bin" >/dev/null 2>&1 &
pid=$!
for i in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:$port/healthz && break; sleep 0.1; done
# A fresh name each run: a PostgreSQL database keeps the users of earlier runs.
tok=$(curl -s http://127.0.0.1:$port/api/v1/auth/register -H 'content-type: application/json' \
  -d "{\"username\":\"bench$$$RANDOM\",\"password\":\"correct-horse\"}" | sed 's/.*"token":"\([^"]*\)".*/\1/')
for path in "${paths[@]}"; do
  t0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(wrk -t1 -c8 -d10s -H "authorization: Bearer $tok" http://127.0.0.1:$port$path | grep -E "Requests/sec|requests in")
  t1=$(awk '{print $14+$15}' /proc/$pid/stat)
  reqs=$(echo "$out" | grep "requests in" | awk '{print $1}')
  echo "cache=$size $path $out"
  python3 -c "print('server CPU per request: %.1f us' % (($t1-$t0)/100.0/$reqs*1e6))"
done
kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir"
