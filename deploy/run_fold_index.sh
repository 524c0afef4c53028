#!/usr/bin/env bash
# One job of a cross-validation sweep: job index -> (fold, variant, seed) -> one `kedro run`.
#
#   FOLDS="fold_B1 fold_B2 ..." VARIANTS="thitogene histogene" SEEDS="0 1" deploy/run_fold_index.sh INDEX
#
# Index i runs fold i % F, variant (i / F) % V, seed i / (F·V), as thitogene_kedro.sweep.job_at
# says: the folds of one variant and seed are consecutive. FOLDS is `kedro folds list` (without
# `final`), the one fold list the pipeline's namespaces come from. Used by the SLURM array (SLURM_ARRAY_TASK_ID) and the Kubernetes Indexed
# Job (JOB_COMPLETION_INDEX). One process, one GPU, one MLflow run named <fold>-<variant>-s<seed>.
# A variant is a model name; models on frozen-encoder features (thitogene_head, linear_probe) train
# through feature_training, the others through training (python -m thitogene_kedro.sweep job says which).
# MLFLOW_TRACKING_URI must be the tracking server (http/https): fold jobs never open the database
# themselves, so they never race on its schema migration.
set -euo pipefail
index=${1:?usage: run_fold_index.sh INDEX}
: "${FOLDS:?FOLDS: the fold namespaces, from kedro folds list}"
case "${MLFLOW_TRACKING_URI:-}" in
  http://*|https://*) ;;
  *) echo "run_fold_index.sh: MLFLOW_TRACKING_URI must point at the tracking server (http[s]://...), got '${MLFLOW_TRACKING_URI:-}'" >&2; exit 2 ;;
esac
job=$(python -m thitogene_kedro.sweep job "$index") || exit 2  # the one index -> job mapping
read -r fold variant seed pipeline <<< "$job"  # pipeline: training, or feature_training for a model on features
run_name="${fold}-${variant}-s${seed}"
params="run_name=${run_name},run_suffix=-${variant}-s${seed},mlflow_experiment=${EXPERIMENT:-thitogene_cv}"
params+=",training.model.name=${variant},training.seed=${seed}${EXTRA_PARAMS:+,${EXTRA_PARAMS}}"
echo "index ${index}: ${run_name} on CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-none}, host $(hostname), start $(date +%s.%N)"
status=0
kedro run --pipelines "${pipeline}" --namespaces "${fold}" --params "${params}" ${KEDRO_ENV:+--env "${KEDRO_ENV}"} || status=$?
echo "index ${index}: ${run_name} end $(date +%s.%N) exit ${status}"
exit "${status}"
