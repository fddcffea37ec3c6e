#!/usr/bin/env bash
# run.sh [RUNS=3] [fanfloor arguments...]: builds fanfloor.c with gcc (into a temporary folder)
# and runs it RUNS times, one after the other. Defaults: the fan-out scenario's shape, 10,000
# sockets, 2 sender threads, 2 receiver processes, a message to every socket every 50 ms
# (20 likes/s), 20 s, 80-byte messages. Loopback only; each run stops by itself.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUNS=${1:-3}
shift || true
BIN_DIR=$(mktemp -d)
trap 'rm -rf "$BIN_DIR"' EXIT
gcc -O2 -Wall -pthread -o "$BIN_DIR/fanfloor" "$HERE/fanfloor.c"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); arguments: ${*:-defaults}"
for ((run = 1; run <= RUNS; run++)); do
  echo "--- run $run ($(date -u +%FT%TZ))"
  "$BIN_DIR/fanfloor" "$@"
done
