#!/usr/bin/env bash
# `manage.py check --deploy` with DEBUG off and production-like settings must be silent.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(env -u DATABASE_URL -u REDIS_URL DEBUG=false \
  SECRET_KEY="check-deploy-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  ALLOWED_HOSTS=classbridge.example.com EMAIL_URL=smtp://mail.example.com:587 \
  CLASSBRIDGE_DATA_DIR="$(mktemp -d)" \
  .venv/bin/python manage.py check --deploy --fail-level WARNING 2>&1)" || {
  echo "$out" >&2
  exit 1
}
echo "$out" | grep -q "no issues" || { echo "$out" >&2; exit 1; }
