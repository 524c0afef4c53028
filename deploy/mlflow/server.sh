#!/usr/bin/env bash
# The lab's MLflow tracking server: PostgreSQL backend store, artifacts proxied by the server (fold
# jobs need no shared filesystem for them), bound to 127.0.0.1 unless told otherwise.
#
#   MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://mlflow:PASSWORD@127.0.0.1:5432/mlflow \
#   [MLFLOW_ARTIFACTS_DESTINATION=./mlartifacts] [MLFLOW_HOST=127.0.0.1] [MLFLOW_PORT=5000] \
#   [MLFLOW_WORKERS=1] deploy/mlflow/server.sh [more `mlflow server` options]
#
# For cluster nodes: MLFLOW_HOST=0.0.0.0 and `--allowed-hosts <host>:<port>,...` (the server's
# security middleware admits localhost only by default), MLFLOW_WORKERS=4 on a real host.
# The server owns the database: it migrates the schema once at start; fold jobs only talk HTTP.
# Job execution is off (with it, the server is ~10 processes and 2.5 GB instead of 2 and ~0.6 GB).
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI, e.g. postgresql+psycopg2://mlflow:...@127.0.0.1:5432/mlflow (deploy/mlflow/local_postgres.sh start prints one)}"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "${MLFLOW_ARTIFACTS_DESTINATION:-./mlartifacts}" \
  --host "${MLFLOW_HOST:-127.0.0.1}" --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}" "$@"
