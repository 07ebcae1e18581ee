#!/usr/bin/env bash
# Starts Debian's PgBouncer in transaction mode in front of a Postgres server,
# with its own config, log and pid file under DIR (the tests' pooler:
# TEST_PGBOUNCER_URL, docs/testing.md). Every database of the server is
# reachable under its own name, as user postgres, without a password
# (auth_type any: test use only).
#
#   scripts/pgbouncer.sh start DIR [PORT (6433)] [UPSTREAM_HOST] [UPSTREAM_PORT]
#   scripts/pgbouncer.sh stop DIR
#
# PgBouncer refuses to run as root: as root it runs as the postgres user.
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] [UPSTREAM_HOST] [UPSTREAM_PORT] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$2

case "$action" in
start)
  port=${3:-6433}
  upstream_host=${4:-127.0.0.1}
  upstream_port=${5:-5432}
  command -v pgbouncer >/dev/null 2>&1 || {
    echo "pgbouncer is not installed (apt-get install pgbouncer)" >&2
    exit 1
  }
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$upstream_host port=$upstream_port user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = any
pool_mode = transaction
; Few server connections per database: the clients' queries switch
; server connections often, as on a busy production pooler.
default_pool_size = 4
max_client_conn = 1000
max_db_connections = 0
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
EOF
  run=()
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$dir"
    run=(runuser -u postgres --)
  fi
  "${run[@]}" pgbouncer -d "$dir/pgbouncer.ini"
  for _ in $(seq 1 50); do
    if pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
      echo "pgbouncer (transaction mode) on 127.0.0.1:$port, log $dir/pgbouncer.log"
      exit 0
    fi
    sleep 0.2
  done
  echo "pgbouncer did not answer on 127.0.0.1:$port; its log:" >&2
  cat "$dir/pgbouncer.log" >&2 || true
  exit 1
  ;;
stop)
  if [ -f "$dir/pgbouncer.pid" ]; then
    kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
  fi
  ;;
*)
  usage
  ;;
esac
