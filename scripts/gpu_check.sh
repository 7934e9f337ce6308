#!/usr/bin/env bash
# Check hl_lightning on a GPU in one run (docs/performance.md, "On a GPU"; the sections are in
# scripts/gpu_check.py). Writes OUT/results.json, OUT/results.md and OUT/gpu_check.log.
#   bash scripts/gpu_check.sh OUT              on a machine with a CUDA GPU (under 8 min on one H100)
#   bash scripts/gpu_check.sh --dry-run OUT    every section at tiny sizes on the CPU (the test suite)
#   bash scripts/gpu_check.sh --prepare        where the project is installed, before a run on a bare
#                                              GPU image: copy the pure-Python packages it lacks to
#                                              .gpu_site/ (to travel with the working tree)
# PYTHON names the interpreter (default python3: on a bare GPU image, the one with PyTorch).
# The repository and .gpu_site/ go first on the import path: nothing is installed.
# After a crash (a failed section is recorded, not a crash) one --resume run records the
# crashed section and runs the sections after it.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
if [[ " $* " != *" --prepare "* && -d "$repo/.gpu_site" ]]; then
    export PYTHONPATH="$repo/.gpu_site:$PYTHONPATH"
fi
export PYTHONUNBUFFERED=1
"$python" "$repo/scripts/gpu_check.py" "$@"
status=$?
if [[ $status -ne 0 && $status -ne 2 && " $* " != *" --prepare "* ]]; then
    echo "[gpu_check] the run ended with status $status: resuming after the crashed section" >&2
    "$python" "$repo/scripts/gpu_check.py" "$@" --resume --crashed-status "$status"
    status=$?
fi
exit "$status"
