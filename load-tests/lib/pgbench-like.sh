#!/usr/bin/env bash
# Prints the pgbench script of one like: load-tests/pgbench-like.sql (variables and the
# authentication read), then schema/src/likes/like.sql (the statement the server runs) with
# pgbench variables in place of its parameters $1..$5 (post, liker, at, text, kind).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cat "$here/pgbench-like.sql"
sed -e 's/\$1::/:post::/' -e 's/\$2::/:liker::/' -e 's/\$3::/LOCALTIMESTAMP(3)::/' \
    -e "s/\\\$4::/(:actor_name || ' liked your photo.')::/" -e "s/\\\$5::/'like'::/" \
    "$here/../schema/src/likes/like.sql"
echo ';'
