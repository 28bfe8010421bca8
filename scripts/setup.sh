#!/usr/bin/env bash
# Create .venv from the Python named in .python-version and install the locked
# dependencies. Idempotent: does nothing when the lock and pyproject are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

want="$(cat .python-version)"
py=""
if command -v pyenv >/dev/null 2>&1 && pyenv prefix "$want" >/dev/null 2>&1; then
  py="$(pyenv prefix "$want")/bin/python"
fi
for candidate in "$py" python3.13 python3.12 python3; do
  [ -n "$candidate" ] || continue
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    py="$(command -v "$candidate")"
    break
  fi
  py=""
done
if [ -z "$py" ]; then
  echo "setup: Python 3.12 or newer is needed (pyenv install $want, or apt-get install python3.12)." >&2
  exit 2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$py" --version)" >&2
  "$py" -m venv .venv
fi
stamp=.venv/.classbridge-installed
# CLASSBRIDGE_BENCH_EXTRA=1 (make bench) adds the `bench` extra: gunicorn and locust.
extras="dev${CLASSBRIDGE_BENCH_EXTRA:+ bench}"
digest="$( (cat pyproject.toml requirements.lock; echo "$extras") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "setup: installing locked dependencies" >&2
  # The dependencies of pyproject.toml (runtime and dev), pinned by requirements.lock.
  EXTRAS="$extras" .venv/bin/python - > .venv/requirements.txt <<'PY'
import os
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = [project["optional-dependencies"][name] for name in os.environ["EXTRAS"].split()]
print("\n".join(project["dependencies"] + [dep for extra in extras for dep in extra]))
PY
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r .venv/requirements.txt -c requirements.lock 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import django, django_q, pandas, plotly, playwright, pytest_django" ||
    { echo "setup: dependencies did not install" >&2; exit 1; }
  echo "$digest" > "$stamp"
fi
