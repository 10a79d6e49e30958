#!/usr/bin/env bash
# A throw-away PostgreSQL server for tests, from Debian's postgresql package:
# initdb into a temporary directory as an unprivileged user (nobody when run
# as root; PostgreSQL refuses to run as root), listening only on a unix
# socket inside that directory.
#
#   pg_tmp.sh start          starts one; prints its connection string
#   pg_tmp.sh stop DSN       stops the server of DSN and removes its directory
#   pg_tmp.sh pause DSN      stops the server of DSN, keeping its data
#   pg_tmp.sh resume DSN     starts it again
#   pg_tmp.sh run CMD...     runs CMD with WARREN_TEST_PG set to a fresh
#                            server's connection string; stops it afterwards
set -euo pipefail

bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "pg_tmp: no PostgreSQL server binaries (apt-get install postgresql)" >&2
  exit 2
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir
  dir=$(mktemp -d /tmp/wr-pg.XXXXXX)
  chmod 0755 "$dir"
  mkdir -m 0700 "$dir/data"
  [ "$(id -u)" -ne 0 ] || chown nobody:nogroup "$dir" "$dir/data"
  # C locale: string order is byte order, as in SQLite.
  as_owner "$bindir/initdb" -D "$dir/data" -U warren --auth=trust --no-locale -E UTF8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
  # A test server: no TCP, and durability traded for speed.
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
    -o "-k $dir -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >/dev/null || { cat "$dir/server.log" >&2; rm -rf "$dir"; exit 1; }
  echo "host=$dir port=5432 user=warren dbname=postgres"
}

dir_of() {
  local dir
  dir=$(printf '%s\n' "$1" | sed -n 's/.*host=\([^ ]*\).*/\1/p')
  case "$dir" in /tmp/wr-pg.*) ;; *) echo "pg_tmp: $1 is not one of ours" >&2; exit 2 ;; esac
  echo "$dir"
}

pause() {
  local dir
  dir=$(dir_of "$1")
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

resume() {
  local dir
  dir=$(dir_of "$1")
  as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
    -o "-k $dir -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    >/dev/null
}

stop() {
  local dsn=$1 dir
  dir=$(printf '%s\n' "$dsn" | sed -n 's/.*host=\([^ ]*\).*/\1/p')
  case "$dir" in /tmp/wr-pg.*) ;; *) echo "pg_tmp: $dsn is not one of ours" >&2; exit 2 ;; esac
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:?usage: pg_tmp.sh stop DSN}" ;;
pause) pause "${2:?usage: pg_tmp.sh pause DSN}" ;;
resume) resume "${2:?usage: pg_tmp.sh resume DSN}" ;;
run)
  shift
  dsn=$(start)
  trap 'stop "$dsn"' EXIT
  WARREN_TEST_PG=$dsn "$@"
  ;;
*) echo "usage: pg_tmp.sh start | stop DSN | pause DSN | resume DSN | run CMD..." >&2; exit 2 ;;
esac
