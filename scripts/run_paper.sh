#!/usr/bin/env bash
# Run the paper's paired experiments (hierarchical against flat loss, same seed, data and
# initial weights) on a downloaded data set, one GPU:
#   scripts/run_paper.sh helen  /data/SmithCVPR2013_dataset_resized
#   scripts/run_paper.sh vistas /data/vistas                 # Mapillary Vistas v1.2 layout
# Further arguments are Hydra overrides, e.g. trainer=cpu trainer.max_epochs=2 seed=1.
# Each run writes to multirun/train/<date>/<job>_loss=<loss>/ (metrics in csv/metrics.csv).
set -euo pipefail

usage="usage: $0 helen|vistas DATA_ROOT [hydra overrides ...]"
dataset=${1:?$usage}
root=${2:?$usage}
shift 2
case "$dataset" in
  helen) experiment=paper_helen ;;
  vistas | mapillary) experiment=paper_vistas ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
if [ ! -d "$root" ]; then
  echo "no data folder $root (see hl_lightning/data/$([ "$dataset" = helen ] && echo helen || echo mapillary).py for the layout)" >&2
  exit 1
fi
# quoted for Hydra: a comma in the path must not start a sweep
exec "${HL_TRAIN:-hl-train}" -m "experiment=$experiment" "data.root='$root'" trainer=gpu "$@"
