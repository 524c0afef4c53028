#!/usr/bin/env bash
# Run a cross-validation sweep on Kubernetes: the experiment once, the Indexed Job, then the summary.
#
#   IMAGE=registry/thitogene-kedro:TAG DATA_PVC=thitogene-data MLFLOW_TRACKING_URI=http://mlflow:5000 \
#   FOLDS="$(kedro folds list | grep -v '^final$' | tr '\n' ' ')" [VARIANTS=...] [SEEDS=...] [PARALLELISM=8] \
#   deploy/k8s/submit.sh
#
# The data pipelines must have run on the data volume first (kedro run --pipelines
# "$(VARIANTS=... python -m thitogene_kedro.sweep data-pipelines)" in a pod mounting it: features too
# for a model on frozen-encoder features). Failed indices are retried on their
# own (backoffLimitPerIndex); to rerun what still failed, delete the Job and submit again: finished
# folds return at once from their completed checkpoints and only the others train.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${IMAGE:?}" "${DATA_PVC:?}" "${MLFLOW_TRACKING_URI:?}" "${FOLDS:?}"
export EXPERIMENT=${EXPERIMENT:-thitogene_cv} VARIANTS=${VARIANTS:-thitogene} SEEDS=${SEEDS:-0}
export JOB_NAME=${JOB_NAME:-thitogene-cv} PARALLELISM=${PARALLELISM:-8} KEDRO_ENV=${KEDRO_ENV:-} EXTRA_PARAMS=${EXTRA_PARAMS:-}
read -r -a f <<< "$FOLDS"; read -r -a v <<< "$VARIANTS"; read -r -a s <<< "$SEEDS"
export COMPLETIONS=$(( ${#f[@]} * ${#v[@]} * ${#s[@]} ))
python -m thitogene_kedro.sweep create-experiment "$EXPERIMENT"
python -m thitogene_kedro.sweep render deploy/k8s/cv-indexed-job.yaml | kubectl apply -f -
until kubectl get "job/${JOB_NAME}" -o jsonpath='{.status.conditions[*].type}' | grep -qE 'Complete|Failed'; do
  sleep 60
done
python -m thitogene_kedro.sweep render deploy/k8s/aggregate-job.yaml | kubectl apply -f -
