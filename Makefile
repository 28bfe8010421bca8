# The README's commands. Every target sets itself up first.
PY := .venv/bin/python
PORT ?= 8000

.PHONY: setup demo test test-fast bench lint fmt run worker sandbox schedules clean

setup:
	@scripts/setup.sh

demo: setup ## site + task worker + vendor simulators, with demo data and users
	@DEBUG=$${DEBUG:-true} $(PY) manage.py demo --port $(PORT)

test: ## lint, migrations, deploy check, the suite on SQLite, then on PostgreSQL + Redis
	@scripts/test.sh

test-fast: setup ## the suite on SQLite only
	@CLASSBRIDGE_SKIP_SERVICES=1 scripts/test.sh

bench: ## every case of bench/cases against its floor, one table (docs/benchmarks.md); BENCH_ONLY=a,b
	@scripts/bench.sh

lint: setup
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

fmt: setup
	@.venv/bin/ruff check --fix . && .venv/bin/ruff format .

run: setup
	@DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput && DEBUG=$${DEBUG:-true} $(PY) manage.py runserver $(PORT)

worker: setup
	@$(PY) manage.py qcluster

sandbox: setup
	@$(PY) manage.py sandbox

schedules: setup
	@$(PY) manage.py setup_schedules

clean:
	rm -rf .venv var
