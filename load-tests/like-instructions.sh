#!/usr/bin/env bash
# like-instructions.sh: PostgreSQL's instructions per like, counted by valgrind, not timed.
#
#   load-tests/like-instructions.sh [--statement FILE] [--migrations DIR] [--extra-sql FILE]
#                                   [--likes N] [--batch K] [--keep]
#
# CPU time per like moves by 10-20% between runs on a shared 2-core machine; an instruction count
# does not (the same binary, data and statements give the same count, whatever else runs). This
# script gives the like's statement that count:
# 1. initdb a scratch cluster in a temp folder (PostgreSQL's own binaries, `pg_config --bindir`
#    or /usr/lib/postgresql/<version>/bin), start it on a Unix socket only, run
#    --migrations' */up.sql in order (default schema/migrations/postgres), then --extra-sql (a
#    schema variant to try),
#    seed 50 authors with 25,000 posts and 50,000 likers, VACUUM ANALYZE, stop. Likes go to the
#    first 250 posts (as ceiling.sh's), but the table is large enough that PostgreSQL's plan
#    reads a post by its key, as on a real posts table, not by a scan of the whole table.
# 2. Twice, on fresh copies of that cluster: a single-user backend (`postgres --single`) under
#    `valgrind --tool=callgrind` PREPAREs --statement (default schema/src/likes/like.sql, the
#    server's statement; $1..$9 as the server binds them, generic plans as the server's
#    connections use) and EXECUTEs it for 200 and for 200 + --likes (default 1000) first likes of
#    distinct (liker, post) pairs, every one notifying a post's author.
# 3. Prints (instructions of the longer run - of the shorter) / --likes: start-up, planning and
#    shutdown cancel out; the same for the WAL each run wrote (its insert position at the end). A statement with five parameters ($1..$5: post, liker, at, text, kind)
#    is bound that way, so the statement of an older build can be counted against its own schema:
#      git archive <build> schema | tar -x -C /tmp/old
#      load-tests/like-instructions.sh --statement /tmp/old/schema/src/likes/like.sql \
#        --migrations /tmp/old/schema/migrations/postgres
# With --batch K, the statement (default schema/src/likes/like_batch.sql) writes K likes of one
# post per execution, as the server's like queue writes a popular post's likes together ($1..$4
# arrays of posts, likers, texts and actors, then at, kind, window, push delay, push TTL); the
# figure is still per like. --likes must then be a multiple of K.
# Not counted: the kernel (fsync, sockets), other processes, waiting. Needs valgrind; as root,
# the cluster runs as the user `postgres`.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
STATEMENT=$ROOT/schema/src/likes/like.sql MIGRATIONS=$ROOT/schema/migrations/postgres EXTRA_SQL="" LIKES=1000 BASE=200 KEEP=0 BATCH=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --statement) STATEMENT=$(realpath "$2"); shift 2 ;;
    --migrations) MIGRATIONS=$(realpath "$2"); shift 2 ;;
    --extra-sql) EXTRA_SQL=$(realpath "$2"); shift 2 ;;
    --likes) LIKES=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [[ $BATCH -gt 0 ]]; then
  [[ $STATEMENT == "$ROOT/schema/src/likes/like.sql" ]] && STATEMENT=$ROOT/schema/src/likes/like_batch.sql
  (( LIKES % BATCH == 0 && BASE % BATCH == 0 )) || { echo "--likes and 200 must be multiples of --batch" >&2; exit 2; }
fi
log() { echo "[like-instructions $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
command -v valgrind >/dev/null || die "valgrind is needed (apt-get install -y valgrind)"
BIN=$(pg_config --bindir 2>/dev/null || true)
[[ -x "$BIN/initdb" ]] || BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x "$BIN/initdb" && -x "$BIN/postgres" ]] || die "no PostgreSQL server binaries (initdb, postgres)"

WORK=$(mktemp -d /tmp/pulse-like-instr.XXXXXX)
chmod 755 "$WORK"
cleanup() {
  [[ -f "$WORK/cluster/postmaster.pid" ]] && as_db "$BIN/pg_ctl" -D "$WORK/cluster" -m immediate stop >/dev/null 2>&1
  if [[ $KEEP == 1 ]]; then log "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
if [[ $(id -u) == 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the user postgres"
  chown postgres "$WORK"
  as_db() { runuser -u postgres -- "$@"; }
else
  as_db() { "$@"; }
fi

log "scratch cluster in $WORK"
as_db "$BIN/initdb" -D "$WORK/cluster" -A trust -U postgres >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
as_db "$BIN/pg_ctl" -D "$WORK/cluster" -w -l "$WORK/server.log" \
  -o "-c listen_addresses='' -k $WORK" start >/dev/null || die "the scratch cluster did not start"
PSQL=(psql -h "$WORK" -U postgres -d postgres -q -v ON_ERROR_STOP=1)
for up in "$MIGRATIONS"/*/up.sql; do
  as_db "${PSQL[@]}" -f "$up" >/dev/null || die "migration $up failed"
done
[[ -n "$EXTRA_SQL" ]] && { as_db "${PSQL[@]}" -f "$EXTRA_SQL" >/dev/null || die "$EXTRA_SQL failed"; }
as_db "${PSQL[@]}" >/dev/null <<'SQL' || die "seeding failed"
INSERT INTO users (username, display_name, password_hash, created_at)
  SELECT 'u' || g, 'u' || g, 'not-a-hash', now() AT TIME ZONE 'UTC' FROM generate_series(1, 50050) g;
INSERT INTO posts (author_id, caption, media_key, width, height, created_at)
  SELECT ((g - 1) % 50) + 1, 'p', 'p', 8, 8, now() AT TIME ZONE 'UTC' FROM generate_series(1, 25000) g;
VACUUM ANALYZE;
SQL
as_db "$BIN/pg_ctl" -D "$WORK/cluster" -w stop >/dev/null

# The single-user backend's input for n likes: -j mode, each command ends with ";" and a blank line.
input() {
  local n=$1 types
  if [[ $BATCH -gt 0 ]]; then batch_input "$n"; return; fi
  if grep -q '\$6' "$STATEMENT"; then
    types="int8,int8,timestamp,text,text,int8,text,int8,int8"
  else
    types="int8,int8,timestamp,text,text"
  fi
  printf 'SET plan_cache_mode = force_generic_plan;\n\n'
  printf 'PREPARE like_(%s) AS %s;\n\n' "$types" "$(sed 's/;[[:space:]]*$//' "$STATEMENT")"
  awk -v n="$n" -v nine="$([[ $types == *int8,text,int8,int8 ]] && echo 1 || echo 0)" 'BEGIN {
    for (g = 0; g < n; g++) {
      post = 1 + g % 250; liker = 51 + int(g / 250)
      printf "EXECUTE like_(%d, %d, LOCALTIMESTAMP(3), %su%d liked your photo.%s, %slike%s", post, liker, q(), liker, q(), q(), q()
      if (nine) printf ", 86400, %s[{\"id\":%d,\"username\":\"u%d\",\"display_name\":\"u%d\"}]%s, 500, 86400", q(), liker, liker, liker, q()
      printf ");\n\n"
    }
  }
  function q() { return sprintf("%c", 39) }'
  printf "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8 AS wal_position;\n\n"
}

# The same for --batch K: n likes as n / K executions of K likes of one post each.
batch_input() {
  local n=$1
  printf 'SET plan_cache_mode = force_generic_plan;\n\n'
  printf 'PREPARE like_(int8[],int8[],text[],text[],timestamp,text,int8,int8,int8) AS %s;\n\n' \
    "$(sed 's/;[[:space:]]*$//' "$STATEMENT")"
  awk -v n="$n" -v k="$BATCH" 'BEGIN {
    for (g = 0; g < n; g += k) {
      post = 1 + (g / k) % 250; posts = ""; likers = ""; texts = ""; actors = ""
      for (j = 0; j < k; j++) {
        liker = 51 + g + j
        sep = (j ? "," : "")
        posts = posts sep post; likers = likers sep liker
        texts = texts sep sprintf("\"u%d liked your photo.\"", liker)
        actors = actors sep sprintf("\"{\\\"id\\\":%d,\\\"username\\\":\\\"u%d\\\",\\\"display_name\\\":\\\"u%d\\\"}\"", liker, liker, liker)
      }
      printf "EXECUTE like_(%s{%s}%s, %s{%s}%s, %s{%s}%s, %s{%s}%s, LOCALTIMESTAMP(3), %slike%s, 86400, 500, 86400);\n\n", q(), posts, q(), q(), likers, q(), q(), texts, q(), q(), actors, q(), q(), q()
    }
  }
  function q() { return sprintf("%c", 39) }'
  printf "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8 AS wal_position;\n\n"
}

count() {
  local n=$1 dir="$WORK/run-$1"
  cp -a "$WORK/cluster" "$dir"
  input "$n" >"$WORK/input-$n.sql"
  as_db valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind-$n.out" \
    "$BIN/postgres" --single -j -D "$dir" postgres <"$WORK/input-$n.sql" >"$WORK/output-$n.txt" 2>&1 \
    || die "the single-user backend failed: $WORK/output-$n.txt"
  if grep -q ERROR "$WORK/output-$n.txt"; then grep -m3 ERROR "$WORK/output-$n.txt" >&2; die "the statement failed"; fi
  rm -rf "$dir"
  echo "$(awk '/^summary:/ { print $2 }' "$WORK/callgrind-$n.out") $(grep -oE 'wal_position = "[0-9]+"' "$WORK/output-$n.txt" | grep -oE '[0-9]+')"
}
log "counting $BASE and $((BASE + LIKES)) likes under callgrind"
read -r short short_wal <<<"$(count "$BASE")"
read -r long long_wal <<<"$(count $((BASE + LIKES)))"
[[ -n "$short" && -n "$long" ]] || die "no count"
echo "statement ${STATEMENT#"$ROOT"/}${EXTRA_SQL:+ + $(basename "$EXTRA_SQL")}: $(( (long - short) / LIKES )) instructions and $(( (long_wal - short_wal) / LIKES )) bytes of WAL per like"
