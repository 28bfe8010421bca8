#!/usr/bin/env bash
# make bench: every case of bench/cases against its floor, one table (docs/benchmarks.md).
#   BENCH_ONLY=queue,load make bench   some cases only (the docs are then left alone,
#                                      unless BENCH_WRITE=1)
#   BENCH_STRICT=1 make bench          a target not met fails too (default: reported only)
#   BENCH_SERVICES=0 make bench        do not start PostgreSQL/Redis (their cases say skipped)
# PostgreSQL and Redis are started with scripts/services.sh when their binaries are
# installed (scripts/system-deps.sh installs them); only the cases that declare `needs`
# see DATABASE_URL / REDIS_URL. Data is kept in var/bench between runs; BENCH_FRESH=1
# rebuilds it.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$(date +%s)
CLASSBRIDGE_BENCH_EXTRA=1 scripts/setup.sh
if [ "${BENCH_FRESH:-}" = "1" ]; then rm -rf var/bench; fi

export CLASSBRIDGE_SERVICES_DIR="${CLASSBRIDGE_SERVICES_DIR:-/tmp/classbridge-bench-services}"
export CLASSBRIDGE_PG_PORT="${CLASSBRIDGE_PG_PORT:-54339}"
export CLASSBRIDGE_REDIS_PORT="${CLASSBRIDGE_REDIS_PORT:-63809}"
started_services=""
stop_services() { [ -n "$started_services" ] && scripts/services.sh stop || true; }
trap stop_services EXIT
unset DATABASE_URL REDIS_URL
if [ "${BENCH_SERVICES:-1}" = "0" ]; then
  echo "bench: BENCH_SERVICES=0: no PostgreSQL/Redis; their cases are skipped" >&2
elif ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; then
  if [ "${BENCH_FRESH:-}" = "1" ]; then scripts/services.sh stop; rm -rf "$CLASSBRIDGE_SERVICES_DIR"; fi
  while IFS= read -r line; do export "${line?}"; done < <(scripts/services.sh start)
  started_services=1
  echo "bench: PostgreSQL and Redis started (port $CLASSBRIDGE_PG_PORT, $CLASSBRIDGE_REDIS_PORT)" >&2
else
  echo "bench: PostgreSQL/Redis not installed (scripts/system-deps.sh): their cases are skipped" >&2
fi

args=()
if [ -z "${BENCH_ONLY:-}" ] || [ "${BENCH_WRITE:-}" = "1" ]; then args+=(--write); fi
if [ "${BENCH_STRICT:-}" = "1" ]; then args+=(--strict); fi
status=0
.venv/bin/python -m bench "${args[@]}" || status=$?
echo "bench: make bench took $(( $(date +%s) - began )) s in all (setup and services included)"
exit "$status"
