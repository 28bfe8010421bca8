#!/usr/bin/env bash
# The full test command (make test; .ci/run calls it): lint, migrations, deploy check,
# the suite on SQLite, then the suite again on PostgreSQL with the Redis broker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/system-deps.sh
export PATH="$PWD/.venv/bin:$PATH"
unset DATABASE_URL REDIS_URL

echo "== ruff" >&2
ruff check .
ruff format --check .
echo "== migrations" >&2
DEBUG=true python manage.py makemigrations --check --dry-run
echo "== check --deploy" >&2
scripts/check-deploy.sh

echo "== pytest (SQLite, database broker)" >&2
python -m pytest -q "$@"

if [ "${CLASSBRIDGE_SKIP_SERVICES:-}" = "1" ]; then
  echo "== skipping PostgreSQL/Redis run (CLASSBRIDGE_SKIP_SERVICES=1)" >&2
  exit 0
fi
echo "== pytest (PostgreSQL, Redis broker)" >&2
eval "$(scripts/services.sh start | sed 's/^/export /')"
trap 'scripts/services.sh stop' EXIT
python -m pytest -q "$@"
