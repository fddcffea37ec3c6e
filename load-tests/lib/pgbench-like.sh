#!/usr/bin/env bash
# Prints the pgbench script of one like: load-tests/pgbench-like.sql (variables and the
# authentication read), then schema/src/likes/like.sql (the statement the server runs) with
# pgbench variables in place of every use of its parameters $1..$9 (post, liker, at, text, kind,
# grouping window, the liker as the group's JSON, push delay and push TTL: the defaults).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cat "$here/pgbench-like.sql"
sed -e 's/\$1::/:post::/g' -e 's/\$2::/:liker::/g' -e 's/\$3::/LOCALTIMESTAMP(3)::/g' \
    -e "s/\\\$4::/(:actor_name || ' liked your photo.')::/g" -e "s/\\\$5::/'like'::/g" \
    -e "s/\\\$6::/86400::/g" -e "s/\\\$8::/300::/g" -e "s/\\\$9::/86400::/g" \
    -e "s/\\\$7::/('[{\"id\":' || :liker || ',\"username\":\"' || :actor_name || '\",\"display_name\":\"' || :display_name || '\"}]')::/g" \
    "$here/../schema/src/likes/like.sql"
echo ';'
