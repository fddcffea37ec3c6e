#!/usr/bin/env bash
# one-post.sh [SECONDS]: PostgreSQL's time per like on one post, with one client: the server's
# one-like statement (schema/src/likes/like.sql) against its batch statement
# (schema/src/likes/like_batch.sql) with 8 likes per call. A scratch database pulse_one_post on
# 127.0.0.1:5432 is migrated from schema/migrations/postgres, given one author and one post, run
# with pgbench -M prepared (as the server prepares), then dropped. Likers need no rows (the
# like's tables have no foreign keys). Prints pgbench's latency per call for each, twice.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
SECS=${1:-4}
PG=(-h 127.0.0.1 -U postgres)
export PGOPTIONS="-c client_min_messages=warning"
DB=pulse_one_post
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null' EXIT
psql "${PG[@]}" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
for up in "$ROOT"/schema/migrations/postgres/*/up.sql; do
  psql "${PG[@]}" -d $DB -q -v ON_ERROR_STOP=1 -f "$up"
done
psql "${PG[@]}" -d $DB -q -v ON_ERROR_STOP=1 \
  -c "INSERT INTO users (id, username, display_name, password_hash, created_at) VALUES (1, 'author', 'Author', 'x', now())" \
  -c "INSERT INTO posts (id, author_id, caption, media_key, width, height, created_at) VALUES (1, 1, 'p', 'k', 1, 1, now())" \
  -c "ANALYZE"
python3 - "$ROOT" "$WORK" <<'PY'
import sys
root, work = sys.argv[1], sys.argv[2]
def bind(sql, values):
    for k in sorted(values, key=lambda k: -int(k[1:])):
        sql = sql.replace(k, values[k])
    return ' '.join(sql.split()) + ';\n'
actor = '{"id": 2, "username": "fan", "display_name": "Fan"}'
one = open(f'{root}/schema/src/likes/like.sql').read()
open(f'{work}/single.sql', 'w').write('\\set l random(1000, 900000000)\n' + bind(one, {
    '$1': '1', '$2': ':l', '$3': 'LOCALTIMESTAMP(3)', '$4': "'Fan liked your photo.'",
    '$5': "'like'", '$6': '60', '$7': f"'[{actor}]'", '$8': '500', '$9': '3600'}))
batch = open(f'{root}/schema/src/likes/like_batch.sql').read()
open(f'{work}/batch8.sql', 'w').write('\\set b random(1000, 100000000)\n' + bind(batch, {
    '$1': 'array_fill(1::int8, ARRAY[8])',
    '$2': '(SELECT array_agg(x) FROM generate_series(:b * 8 + 1, :b * 8 + 8) x)',
    '$3': "array_fill('Fan liked your photo.'::text, ARRAY[8])",
    '$4': f"array_fill('{actor}'::text, ARRAY[8])", '$5': 'LOCALTIMESTAMP(3)',
    '$6': "'like'", '$7': '60', '$8': '500', '$9': '3600'}))
PY
for script in single batch8 single batch8; do
  printf '%-7s ' "$script"
  pgbench "${PG[@]}" -n -M prepared -c 1 -T "$SECS" -f "$WORK/$script.sql" $DB 2>&1 | grep 'latency average'
done
