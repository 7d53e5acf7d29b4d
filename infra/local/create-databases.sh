#!/usr/bin/env bash
# create-databases.sh [ADMIN_URL] [PREFIX]: the databases the servers need, once (idempotent):
# PREFIX_mlflow (tracking + registry), PREFIX_mlflow_auth (MLflow users), PREFIX_prefect.
set -euo pipefail
admin=${1:-postgresql://postgres@127.0.0.1:5432/postgres}
prefix=${2:-labelwise}
for db in "${prefix}_mlflow" "${prefix}_mlflow_auth" "${prefix}_prefect"; do
  if [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
    psql "$admin" -qc "CREATE DATABASE \"$db\""
    echo "created $db"
  fi
done
