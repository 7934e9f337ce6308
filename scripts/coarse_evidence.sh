#!/usr/bin/env bash
# The coarse-label evidence study (experiment=coarse_evidence): on the hard
# synthetic data, (a) N = 16 fine images, (b) the same plus M = 256 labelled only at the
# family level, (c) all 272 fine; loss=hierarchical and loss=flat; seeds 0-4, paired. Then
# hl-compare (per level mean ± 95% CI, the paired differences against (a)) and the table
# of how much of the gap to (c) the coarse images close (coarse_evidence.md). Further
# arguments are Hydra overrides:
#   bash scripts/coarse_evidence.sh                 # about 15 min on 2 idle CPU cores
#   bash scripts/coarse_evidence.sh trainer=gpu     # on a GPU
#   bash scripts/coarse_evidence.sh --dry-run       # seconds a run: tiny arms, 2 seeds
#   OUT=multirun/coarse bash scripts/coarse_evidence.sh   # where the sweep goes
set -euo pipefail

dry=()
if [[ "${1:-}" == "--dry-run" ]]; then  # the whole pipeline on tiny arms of equal steps
  shift
  dry=(
    seed=0,1
    data.num_val=4 data.num_test=4 data.image_size=32 data.batch_size=4
    backbone.width=4 backbone.depth=2 logger=csv callbacks.level_predictions=null
    study.arms.fine.num_train=4 study.arms.fine.epochs=3 study.arms.fine.val_every=3
    study.arms.coarse.num_train=12 study.arms.coarse.epochs=1
    study.arms.all_fine.num_train=12 study.arms.all_fine.epochs=1
  )
fi
out=${OUT:-multirun/coarse_evidence/$(date +%Y-%m-%d_%H-%M-%S)}
start=$(date +%s)
"${HL_TRAIN:-hl-train}" -m experiment=coarse_evidence "hydra.sweep.dir=$out" ${dry[@]+"${dry[@]}"} "$@"
echo "coarse_evidence: the sweep took $(($(date +%s) - start)) s"
"${HL_COMPARE:-hl-compare}" "$out" --baseline study.arm=fine
"${PYTHON:-python}" "$(dirname "$0")/coarse_evidence_table.py" "$out"
echo "coarse_evidence: $out/comparison.md, $out/differences.csv, $out/coarse_evidence.md"
