#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster and Redis server for the test suite.
#   scripts/services.sh start   -> prints DATABASE_URL=... and REDIS_URL=... lines
#   scripts/services.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
run_dir="${CLASSBRIDGE_SERVICES_DIR:-/tmp/classbridge-services}"
pg_port="${CLASSBRIDGE_PG_PORT:-54329}"
redis_port="${CLASSBRIDGE_REDIS_PORT:-63799}"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"

as_pg() {
  if [ "$(id -u)" = "0" ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

case "${1:-}" in
start)
  mkdir -p "$run_dir"
  chmod 777 "$run_dir"
  if [ ! -f "$run_dir/pg/PG_VERSION" ]; then
    mkdir -p "$run_dir/pg"
    [ "$(id -u)" = "0" ] && chown postgres "$run_dir/pg"
    as_pg "$pg_bin/initdb -D $run_dir/pg -U postgres --auth=trust -E UTF8 >/dev/null"
  fi
  if ! as_pg "$pg_bin/pg_ctl -D $run_dir/pg status" >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl -D $run_dir/pg -l $run_dir/pg.log -w -o '-p $pg_port -k $run_dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off' start" >/dev/null
  fi
  as_pg "$pg_bin/psql -h 127.0.0.1 -p $pg_port -U postgres -tAc \"SELECT 1 FROM pg_roles WHERE rolname='classbridge'\"" | grep -q 1 ||
    as_pg "$pg_bin/psql -h 127.0.0.1 -p $pg_port -U postgres -qc \"CREATE ROLE classbridge LOGIN CREATEDB PASSWORD 'classbridge'\""
  as_pg "$pg_bin/psql -h 127.0.0.1 -p $pg_port -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='classbridge'\"" | grep -q 1 ||
    as_pg "$pg_bin/psql -h 127.0.0.1 -p $pg_port -U postgres -qc \"CREATE DATABASE classbridge OWNER classbridge\""
  if ! redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    redis-server --daemonize yes --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
      --pidfile "$run_dir/redis.pid" --logfile "$run_dir/redis.log"
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  echo "DATABASE_URL=postgres://classbridge:classbridge@127.0.0.1:$pg_port/classbridge"
  echo "REDIS_URL=redis://127.0.0.1:$redis_port/0"
  ;;
stop)
  if [ -f "$run_dir/pg/PG_VERSION" ]; then
    as_pg "$pg_bin/pg_ctl -D $run_dir/pg -m fast stop" >/dev/null 2>&1 || true
  fi
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
