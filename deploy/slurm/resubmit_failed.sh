#!/usr/bin/env bash
# Resubmit only the indices of a sweep whose run did not finish (asked of MLflow, so it needs no
# SLURM accounting; finished folds are left untouched, a resubmitted fold resumes from its last
# checkpoint), then the summary again.
#
#   deploy/slurm/resubmit_failed.sh <array job id>
set -euo pipefail
cd "$(dirname "$0")/../.."
array=${1:?usage: resubmit_failed.sh ARRAY_JOB_ID}
source "logs/slurm/${array}.env"
export FOLDS VARIANTS SEEDS EXPERIMENT EXPECTED_RUNS
failed=$(python -m thitogene_kedro.sweep missing-indices --experiment "$EXPERIMENT")
if [[ -z "$failed" ]]; then echo "no failed index in array $array"; exit 0; fi
new=$(sbatch --parsable --array="$failed" --export=ALL "${SBATCH_EXTRA[@]}" deploy/slurm/cv_array.sbatch)
summary=$(sbatch --parsable --dependency="afterany:${new%%;*}" --export=ALL deploy/slurm/aggregate.sbatch)
cp "logs/slurm/${array}.env" "logs/slurm/${new%%;*}.env"
echo "resubmitted indices $failed as ${new%%;*}; summary ${summary%%;*}"
