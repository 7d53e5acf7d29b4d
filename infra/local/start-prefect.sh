#!/usr/bin/env bash
# start-prefect.sh DB_URL [PORT]: Prefect API server (and its services) on PostgreSQL.
# Secret from the environment: PREFECT_SERVER_API_AUTH_STRING="user:password" (basic auth);
# clients (CLI, workers, flows) send it as PREFECT_API_AUTH_STRING.
set -euo pipefail
db=${1:?usage: start-prefect.sh postgresql+asyncpg://user@host:5432/prefect [port]}
port=${2:-4200}
: "${PREFECT_SERVER_API_AUTH_STRING:?set PREFECT_SERVER_API_AUTH_STRING=user:password: the API refuses anonymous access}"
export PREFECT_API_DATABASE_CONNECTION_URL="$db"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export PREFECT_UI_ENABLED=${PREFECT_UI_ENABLED:-true}
exec prefect server start --host "${PREFECT_HOST:-127.0.0.1}" --port "$port"
