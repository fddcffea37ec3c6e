#!/usr/bin/env bash
# group-size.sh: does a like cost more when its group is large? One post, one author, and
# likers joining the post's one group, in rounds; each round's likes are timed alone.
#
#   load-tests/group-size.sh [--rounds N] [--likes-per-round N]
#
# Prepares PostgreSQL as run.sh does (fresh database, `pulse migrate`; release build or PULSE_BIN),
# seeds one author, one post and rounds x likes-per-round likers, then runs pgbench-like.sql
# (the server's like statement, see lib/pgbench-like.sh) with one client, round after round:
# round k's likes join a group that already has (k - 1) x likes-per-round members. One client,
# so nothing waits on a lock: the latency per like is the statement's own cost. Prints a line per
# round (group size before, likes/s, mean latency) and writes results/group-size-<date>.txt.
# Join cost constant in the group's size means the rounds' latencies stay flat.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=lib/topology.sh
source "$HERE/lib/topology.sh"

ROUNDS=10 PER_ROUND=2000
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --likes-per-round) PER_ROUND=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BACKEND=pg
results_path group-size
topo_init
ensure_bin
prepare_backend
PSQL=(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d "$DB_NAME" -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" <<SQL
INSERT INTO users (username, display_name, password_hash, created_at)
  SELECT 'gs' || g, 'gs' || g, 'not-a-hash', now() AT TIME ZONE 'UTC' FROM generate_series(1, 1 + $ROUNDS * $PER_ROUND) g;
INSERT INTO posts (author_id, caption, media_key, width, height, created_at)
  VALUES (1, 'one post', 'group-size', 8, 8, now() AT TIME ZONE 'UTC');
VACUUM ANALYZE;
SQL
"$HERE/lib/pgbench-like.sh" >"$WORK/pgbench-like.sql"
{
  echo "# $(date -u +%FT%TZ) load-tests/group-size.sh --rounds $ROUNDS --likes-per-round $PER_ROUND ($(cores) cores, binary $BIN)"
  echo "# round  group size before  likes/s  mean latency ms"
} | tee "$OUT.txt"
for ((round = 0; round < ROUNDS; round++)); do
  # pgbench-like.sql: liker = authors + 1 + n (one post, one client), so `authors` offsets
  # each round to likers no earlier round used; post 1 stays the author's (user 1).
  out=$(pgbench -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -n -M prepared -f "$WORK/pgbench-like.sql" \
    -D authors=$((1 + round * PER_ROUND)) -D likers=$((ROUNDS * PER_ROUND)) -D posts=1 -D clients=1 -D n=-1 \
    -c 1 -j 1 -t "$PER_ROUND" "$DB_NAME" 2>&1) || { echo "$out" >&2; die "pgbench failed"; }
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  printf '%7d  %17d  %7.0f  %15s\n' "$((round + 1))" "$((round * PER_ROUND))" "$tps" "$lat" | tee -a "$OUT.txt"
done
read -r groups members notes < <("${PSQL[@]}" -Atc "SELECT count(*), max(actor_count), (SELECT count(*) FROM notifications) FROM notification_groups" | tr '|' ' ')
echo "# groups: $groups, members of the largest: $members, notifications: $notes" | tee -a "$OUT.txt"
[[ $members == $((ROUNDS * PER_ROUND)) ]] || die "expected one group of $((ROUNDS * PER_ROUND)) members"
