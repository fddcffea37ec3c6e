#!/usr/bin/env bash
# push.sh: Web Push throughput per core and commit -> push latency, one instance on PostgreSQL.
#
#   load-tests/push.sh [--rate R] [--duration D]      (defaults 200 likes/s for 20 s)
#
# Starts one instance (release build or PULSE_BIN) with PULSE_PUSH_ALLOW_PRIVATE=true and runs
# harness/push.mjs against it: AUTHORS (50) subscribed authors without sockets, RATE likes/s of
# their posts, every like pushed to a loopback sink that answers 201. Prints the harness's JSON
# and the CPU seconds per component over the run (server, PostgreSQL, the Node driver and sink);
# pushes per server CPU-second is the throughput per core. Writes results/push-<date>.json.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib/topology.sh
source "$HERE/lib/topology.sh"

RATE=200 DURATION=20
while [[ $# -gt 0 ]]; do
  case $1 in
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BACKEND=pg
results_path push
topo_init
ensure_harness
ensure_bin
prepare_backend
export PULSE_PUSH_ALLOW_PRIVATE=true
start_instances 1
cpu_sampler "$WORK/cpu.txt"
out=$(BASE_URL=${BASE_URLS%%,*} RATE=$RATE DURATION=$DURATION node "$HERE/harness/push.mjs") || status=$?
echo "$out" | grep -v '^PHASE' >"$WORK/push.json"
from=$(echo "$out" | sed -n 's/^PHASE cpu from=//p'); to=$(echo "$out" | sed -n 's/^PHASE cpu to=//p')
sleep 1.2 # one more CPU sample after the phase
pushes=$(sed -n 's/.*"pushes_received":\([0-9]*\).*/\1/p' "$WORK/push.json")
cpu=$(cpu_phase "$from" "$to" "$WORK/cpu.txt" "${pushes:-0}")
{ echo "{\"command\":\"load-tests/push.sh --rate $RATE --duration $DURATION\",\"cores\":\"$(cores)\",\"binary\":\"$BIN\","
  echo "\"result\":$(cat "$WORK/push.json"),\"cpu\":$cpu}"; } | tee "$OUT.json"
exit "${status:-0}"
