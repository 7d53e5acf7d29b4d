#!/usr/bin/env bash
# start-mlflow.sh DB_URL [PORT] [ARTIFACT_DIR]: MLflow tracking + registry server on PostgreSQL.
set -euo pipefail
db=${1:?usage: start-mlflow.sh postgresql://user@host:5432/mlflow [port] [artifact dir]}
port=${2:-5000}
artifacts=${3:-$PWD/.labelwise/server-artifacts}
mkdir -p "$artifacts"
exec mlflow server --host 127.0.0.1 --port "$port" --backend-store-uri "$db" \
  --artifacts-destination "$artifacts" --serve-artifacts \
  --allowed-hosts "127.0.0.1,127.0.0.1:$port,localhost,localhost:$port"
