#!/usr/bin/env bash
# The cluster fan-out on a real scheduler, inside a private network namespace (run by
# tests/deploy/test_slurm_fanout.py as `unshare -n bash slurm_fanout.sh PROJECT WORKDIR CHECKER`):
# munge, slurmctld and slurmd with two fake GPUs, PostgreSQL and the MLflow server on 127.0.0.1;
# deploy/slurm/submit.sh sends the 4-fold array of the real training pipeline (tiny synthetic
# settings in PROJECT/conf/local) plus the summary job; check_fanout.py checks the result.
# Then a sweep with a broken fold, which the checker must reject. Stops exactly what it started.
set -euo pipefail
project=$(realpath "$1"); work=$(realpath "$2"); checker=$(realpath "$3")
# PostgreSQL runs as the postgres user, who cannot enter the caller's private temporary folders
pg=$(mktemp -d /tmp/fanout-postgres.XXXXXX); chmod 755 "$pg"
started=()
cleanup() {
  set +e
  for pid in "${started[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null; done
  [[ -f "$pg/db/data/postmaster.pid" ]] && "$project/deploy/mlflow/local_postgres.sh" stop "$pg/db" >/dev/null 2>&1
  for pid in "${started[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null
  done
  rm -rf "$pg"
}
trap cleanup EXIT
start() {  # start "$@" in its own process group, remember its pid
  setsid "$@" &
  started+=("$!")
}
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$((limit * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timed out waiting for $what" >&2; return 1
}

# Slurm's address lookup refuses a host that has loopback only: one private address, inside this namespace
ip link set lo up
ip addr add 10.251.0.1/32 dev lo

mkdir -p "$work/munge" "$work/state" "$work/spool"
head -c 1024 /dev/urandom > "$work/munge/munge.key"; chmod 400 "$work/munge/munge.key"
start munged --foreground --force --key-file="$work/munge/munge.key" --socket="$work/munge/socket" \
  --pid-file="$work/munge/pid" --log-file="$work/munge/log" --seed-file="$work/munge/seed"
wait_for 10 munged test -S "$work/munge/socket"

host=$(hostname -s)
memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$work/slurm.conf" <<CONF
ClusterName=fanout
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerParameters=sched_interval=1
NodeName=${host} NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=${memory} Gres=gpu:2 State=UNKNOWN
PartitionName=ci Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$work/gres.conf" <<CONF
AutoDetect=off
NodeName=${host} Name=gpu File=/dev/null
NodeName=${host} Name=gpu File=/dev/zero
CONF
export SLURM_CONF="$work/slurm.conf"
start slurmctld -D -i -f "$SLURM_CONF"
start slurmd -D -f "$SLURM_CONF" -N "$host"
wait_for 60 "an idle Slurm node" bash -c '[[ $(sinfo -h -o %T) == idle ]]'
echo "slurm: $(sinfo -h -o '%N %T %G')"

uri=$("$project/deploy/mlflow/local_postgres.sh" start "$pg/db" 5433)
echo "postgres: $uri"
MLFLOW_BACKEND_STORE_URI="$uri" MLFLOW_ARTIFACTS_DESTINATION="$work/mlartifacts" MLFLOW_PORT=5055 \
  start bash -c "exec '$project/deploy/mlflow/server.sh' > '$work/mlflow.log' 2>&1"
export MLFLOW_TRACKING_URI=http://127.0.0.1:5055
wait_for 120 "the MLflow server" python -c "import urllib.request; urllib.request.urlopen('$MLFLOW_TRACKING_URI/health')"
echo "mlflow: server up"

run_sweep() {  # run_sweep EXPERIMENT [FOLDS]: submit, wait for the array and the summary to leave the queue
  local experiment=$1
  # this node has 2 CPUs and no 48 GB: the array's site defaults are overridden as a user would
  ( cd "$project" && EXPERIMENT="$experiment" FOLDS="${2:-}" THROTTLE=4 \
      deploy/slurm/submit.sh --cpus-per-task=1 --mem=1G --time=00:20:00 ) \
    > "$work/$experiment.submit" 2>"$work/$experiment.submit.log"
  wait_for 600 "sweep $experiment to leave the queue" bash -c '[[ -z $(squeue -h) ]]'
  read -r array summary < "$work/$experiment.submit"
  echo "$array $summary"
}

read -r array summary <<< "$(run_sweep thitogene_cv)"
python "$checker" --project "$project" --experiment thitogene_cv --array "$array" \
  --folds 4 --gpus 2

read -r array summary <<< "$(run_sweep thitogene_cv_broken "fold_SYN_A1 fold_NO_SUCH_FOLD")"
if python "$checker" --project "$project" --experiment thitogene_cv_broken \
  --array "$array" --folds 2 --gpus 2 > "$work/broken.check" 2>&1; then
  cat "$work/broken.check"; echo "FAIL the sweep with a broken fold passed the checks"; exit 1
fi
echo "PASS the sweep with a broken fold fails the checks: $(grep -c '^FAIL' "$work/broken.check") failed"
