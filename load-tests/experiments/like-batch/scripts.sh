#!/usr/bin/env bash
# scripts.sh DIR: writes the pgbench scripts of the like-batch experiment into DIR:
#   single.sql   the one-like pgbench script of ../../lib/pgbench-like.sh without its token
#                check;
#   batchN.sql   statement.sql (the batch statement of commit 97e23f8) with N fresh likes per
#                transaction, for N = 1, 2, 4, 8 (pairs numbered like pgbench-like.sql's).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:?usage: scripts.sh DIR}
mkdir -p "$OUT"
"$HERE/../../lib/pgbench-like.sh" | grep -v '^--' | grep -v '^SELECT id, username\|AND NOT EXISTS' \
  | sed "s/:actor_name/'x'/" >"$OUT/single.sql"
for n in 1 2 4 8; do
  posts=() likers=()
  {
    echo '\set n :n + 1'
    for ((k = 0; k < n; k++)); do
      echo "\\set g$k (:n * :clients + :client_id) * $n + $k"
      echo "\\set post$k 1 + :g$k % :posts"
      echo "\\set liker$k :authors + 1 + :g$k / :posts"
      posts+=(":post$k") likers+=(":liker$k")
    done
    sed "s/@POSTS@/ARRAY[$(IFS=,; echo "${posts[*]}")]::int8[]/; s/@LIKERS@/ARRAY[$(IFS=,; echo "${likers[*]}")]::int8[]/; s/@N@/$n/g" \
      "$HERE/statement.sql"
  } >"$OUT/batch$n.sql"
done
