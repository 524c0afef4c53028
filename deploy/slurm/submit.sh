#!/usr/bin/env bash
# Submit a cross-validation sweep to SLURM: data once, the experiment once, the fold array, the summary.
#
#   MLFLOW_TRACKING_URI=http://mlflow-host:5000 [KEDRO_ENV=her2st] [VARIANTS="thitogene histogene"] \
#   [SEEDS="0 1 2"] [THROTTLE=8] [EXPERIMENT=thitogene_cv] [EXTRA_PARAMS=training.epochs=300] \
#   deploy/slurm/submit.sh [extra sbatch options for the array, e.g. --partition=gpu]
#
# 1. runs the data pipelines here (one process; fold jobs read their outputs from the shared disk;
#    `python -m thitogene_kedro.sweep data-pipelines` says which: features too for thitogene_head, linear_probe);
# 2. creates the MLflow experiment once (concurrent first use races: runs land in Default or crash);
# 3. submits deploy/slurm/cv_array.sbatch as --array=0-<folds·variants·seeds - 1>%THROTTLE;
# 4. submits deploy/slurm/aggregate.sbatch with --dependency=afterany:<array>.
# FOLDS, if set, replaces the fold list (a subset; the CI test's broken fold).
# Prints "<array id> <summary id>" and writes logs/slurm/<array id>.env, which
# deploy/slurm/resubmit_failed.sh reads to resubmit failed indices only.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${MLFLOW_TRACKING_URI:?set MLFLOW_TRACKING_URI to the tracking server (make mlflow-server)}"
export EXPERIMENT=${EXPERIMENT:-thitogene_cv} VARIANTS=${VARIANTS:-thitogene} SEEDS=${SEEDS:-0}
env_args=(); [[ -n "${KEDRO_ENV:-}" ]] && env_args=(--env "$KEDRO_ENV")
mkdir -p logs/slurm
# the data pipelines the variants need (features too for a model on frozen-encoder features)
kedro run --pipelines "$(python -m thitogene_kedro.sweep data-pipelines)" "${env_args[@]}" >&2
python -m thitogene_kedro.sweep create-experiment "$EXPERIMENT" >&2
# the fold namespaces, from the one fold list the pipeline is built from (FOLDS set: that list instead)
FOLDS=${FOLDS:-$(kedro folds list "${env_args[@]}" | grep -v '^final$' | tr '\n' ' ')}
export FOLDS
read -r -a f <<< "$FOLDS"; read -r -a v <<< "$VARIANTS"; read -r -a s <<< "$SEEDS"
n=$(( ${#f[@]} * ${#v[@]} * ${#s[@]} ))
export EXPECTED_RUNS=$n
array=$(sbatch --parsable --array="0-$((n - 1))%${THROTTLE:-8}" --export=ALL "$@" deploy/slurm/cv_array.sbatch)
array=${array%%;*}
summary=$(sbatch --parsable --dependency="afterany:${array}" --export=ALL deploy/slurm/aggregate.sbatch)
{ declare -p FOLDS VARIANTS SEEDS EXPERIMENT EXPECTED_RUNS; echo "SBATCH_EXTRA=(${*@Q})"; } > "logs/slurm/${array}.env"
echo "${array} ${summary%%;*}"
