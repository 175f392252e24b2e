#!/usr/bin/env bash
# Leiden task 1 (experiments.md G): every one-factor MLP study of configs/leiden_mlp.py, on
# MNIST and Fashion-MNIST, each sweep into runs/leiden_mlp_DATA/SWEEP with its report, and all
# their tables in runs/leiden_mlp_DATA/report.md.
# Trials that differ only in values train together (--vmap). Re-running skips finished trials.
#
#   launch/leiden_task1.sh [DATA...]        # default: mnist fashion_mnist
#   EXTRA="--executor=slurm --partition=gpu" launch/leiden_task1.sh   # on a SLURM cluster
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEPS="init dropout optimizer loss batch widths output depth regularizers permuted"
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(mnist fashion_mnist)
for data in "${datasets[@]}"; do
  for sweep in $SWEEPS; do
    # shellcheck disable=SC2086  # EXTRA holds several flags
    python -m launch.sweep --config="configs/leiden_mlp.py:data=$data" --sweep="$sweep" --vmap \
        --workdir="runs/leiden_mlp_$data/$sweep" ${EXTRA:-}
  done
  # One report.md with every sweep's table (each sweep dir has its own table and curves too),
  # ranked by validation accuracy at the best validation loss: the loss sweep's losses differ.
  # shellcheck disable=SC2086
  python -m dljax.report $(printf "runs/leiden_mlp_$data/%s " $SWEEPS) --rank_by=accuracy:max \
      --out "runs/leiden_mlp_$data"
done
