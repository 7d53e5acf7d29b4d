#!/usr/bin/env bash
# start-mlflow.sh DB_URL AUTH_DB_URL [PORT] [ARTIFACTS]
# MLflow tracking + registry server on PostgreSQL, with basic auth (users in AUTH_DB_URL).
# ARTIFACTS is a local folder or an object-store URI (s3://bucket/, with MLFLOW_S3_ENDPOINT_URL
# and AWS_* credentials in the environment); the server proxies artifact access.
# Secrets come from the environment, never from arguments or files in the repository:
#   MLFLOW_AUTH_ADMIN_PASSWORD      the admin user's password (created on first start)
#   MLFLOW_FLASK_SERVER_SECRET_KEY  signs the auth app's sessions / CSRF tokens
# Optional: MLFLOW_HOST (default 127.0.0.1), MLFLOW_ALLOWED_HOSTS (Host headers accepted,
# DNS-rebinding protection), MLFLOW_WORKERS (default 2), MLFLOW_AUTH_INI_DIR.
set -euo pipefail
db=${1:?usage: start-mlflow.sh postgresql://user@host:5432/mlflow postgresql://user@host:5432/mlflow_auth [port] [artifact dir]}
auth_db=${2:?the MLflow users database URL is required}
port=${3:-5000}
artifacts=${4:-$PWD/.labelwise/server-artifacts}
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?set MLFLOW_AUTH_ADMIN_PASSWORD: the server refuses anonymous access}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY}"
case "$artifacts" in
  *://*) ;;  # an object store: nothing to create here
  *) mkdir -p "$artifacts" ;;
esac
# the auth app reads its settings from an ini file (no secret in it: the admin password comes
# from MLFLOW_AUTH_ADMIN_PASSWORD)
ini_dir=${MLFLOW_AUTH_INI_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$ini_dir"
ini="$ini_dir/mlflow-auth-$port.ini"
cat > "$ini" <<INI
[mlflow]
default_permission = READ
database_uri = $auth_db
admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$ini"
exec mlflow server --host "${MLFLOW_HOST:-127.0.0.1}" --port "$port" --backend-store-uri "$db" \
  --artifacts-destination "$artifacts" --serve-artifacts --app-name basic-auth \
  --workers "${MLFLOW_WORKERS:-2}" \
  --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-127.0.0.1,127.0.0.1:$port,localhost,localhost:$port}"
