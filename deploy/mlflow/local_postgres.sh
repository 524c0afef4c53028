#!/usr/bin/env bash
# A PostgreSQL cluster for the tracking server on this host (a lab machine; the CI test):
#
#   deploy/mlflow/local_postgres.sh start DIR [PORT]   # initdb on first use, start on 127.0.0.1, print the store URI
#   deploy/mlflow/local_postgres.sh stop DIR
#
# Data, socket and log live in DIR. As root, the server runs as the `postgres` user.
set -euo pipefail
action=${1:?usage: local_postgres.sh start|stop DIR [PORT]}
dir=$(realpath -m "${2:?usage: local_postgres.sh start|stop DIR [PORT]}")
port=${3:-5433}
bin=$(pg_config --bindir 2>/dev/null || true)
[[ -x "$bin/initdb" ]] || bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x "$bin/initdb" ]] || { echo "local_postgres.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }
as_owner() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$action" in
  start)
    mkdir -p "$dir"
    [[ $(id -u) == 0 ]] && chown postgres "$dir"
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >"$dir/initdb.log"
      fresh=1
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir" start >&2
    if [[ -n "${fresh:-}" ]]; then
      psql -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE USER mlflow PASSWORD 'mlflow'" \
        -c "CREATE DATABASE mlflow OWNER mlflow" >&2
    fi
    echo "postgresql+psycopg2://mlflow:mlflow@127.0.0.1:${port}/mlflow"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    ;;
  *) echo "local_postgres.sh: unknown action $action" >&2; exit 2 ;;
esac
