#!/usr/bin/env bash
# The evidence study (experiment=evidence): the loss family over seeds 0-4, paired, on the
# synthetic default; then hl-compare: per level mean ± 95% CI over seeds, convergence, and
# the paired differences against the flat loss. Further arguments are Hydra overrides:
#   bash scripts/evidence.sh                        # about 30-45 min on 2 CPU cores
#   bash scripts/evidence.sh trainer=gpu            # on a GPU
#   OUT=multirun/evidence bash scripts/evidence.sh  # where the sweep goes
set -euo pipefail

out=${OUT:-multirun/evidence/$(date +%Y-%m-%d_%H-%M-%S)}
"${HL_TRAIN:-hl-train}" -m experiment=evidence "hydra.sweep.dir=$out" "$@"
"${HL_COMPARE:-hl-compare}" "$out" --baseline loss=flat
echo "evidence: $out/comparison.md, $out/differences.csv"
