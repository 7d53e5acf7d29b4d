#!/usr/bin/env bash
# start-prefect.sh DB_URL [PORT]: Prefect API server on PostgreSQL.
set -euo pipefail
db=${1:?usage: start-prefect.sh postgresql+asyncpg://user@host:5432/prefect [port]}
port=${2:-4200}
export PREFECT_API_DATABASE_CONNECTION_URL="$db"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
exec prefect server start --host 127.0.0.1 --port "$port"
