#!/usr/bin/env bash
# make bench: generate the benchmark cohort (500 students x 400 assignments, 200,000
# progressions, the database padded to 1,000,000) in its own SQLite database, then time the
# cohort pages. The data is kept in var/bench between runs; BENCH_FRESH=1 rebuilds it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export CLASSBRIDGE_DATA_DIR="${CLASSBRIDGE_DATA_DIR:-$PWD/var/bench}"
export DEBUG=false SECRET_KEY="bench-only-not-a-secret" SECURE_SSL_REDIRECT=false
export ALLOWED_HOSTS=localhost
PY=.venv/bin/python
if [ "${BENCH_FRESH:-}" = "1" ]; then rm -rf "$CLASSBRIDGE_DATA_DIR"; fi
$PY manage.py migrate --noinput -v 0
$PY manage.py vendor_plotly >/dev/null
$PY manage.py collectstatic --noinput -v 0
if ! $PY manage.py shell -v 0 -c "from cohorts.models import Cohort; import sys; sys.exit(0 if Cohort.objects.filter(external_id='bench-500x400').exists() else 1)"; then
  echo "bench: generating 1,000,000 progressions (about a minute)" >&2
  time $PY manage.py generate_bench_cohort --total-progressions 1000000
fi
$PY manage.py bench_pages --repeat "${BENCH_REPEAT:-5}"
