#!/usr/bin/env bash
# The evidence study (experiment=evidence): the loss family over seeds 0-4, paired, on the
# hard variant of the synthetic data; then hl-compare (per level mean ± 95% CI over seeds,
# convergence, calibration, consistency, the paired differences against the flat loss) and
# the results tables of docs/results.md (evidence.md). Further arguments are Hydra overrides:
#   bash scripts/evidence.sh                        # about 45 min on 2 CPU cores
#   bash scripts/evidence.sh trainer=gpu            # on a GPU
#   OUT=multirun/evidence bash scripts/evidence.sh  # where the sweep goes
set -euo pipefail

out=${OUT:-multirun/evidence/$(date +%Y-%m-%d_%H-%M-%S)}
start=$(date +%s)
"${HL_TRAIN:-hl-train}" -m experiment=evidence "hydra.sweep.dir=$out" "$@"
echo "evidence: the sweep took $(($(date +%s) - start)) s"
"${HL_COMPARE:-hl-compare}" "$out" --baseline loss=flat
"${PYTHON:-python}" "$(dirname "$0")/evidence_table.py" "$out"
echo "evidence: $out/comparison.md, $out/differences.csv, $out/evidence.md"
