#!/usr/bin/env bash
# Check hl_lightning on a GPU in one run (docs/performance.md, "On a GPU"); see
# scripts/gpu_check.py for the sections. Writes OUT/results.json, OUT/results.md, OUT/gpu_check.log.
#   bash scripts/gpu_check.sh OUT              on a machine with a CUDA GPU (under 8 min on one H100)
#   bash scripts/gpu_check.sh --dry-run OUT    every section at tiny sizes on the CPU (the test suite)
#   bash scripts/gpu_check.sh --prepare        here, before a run on a bare GPU image: copy the
#                                              pure-Python packages it lacks to .gpu_site/ (carry it)
# PYTHON names the interpreter (default python3: on a bare GPU image, the one with PyTorch).
# The repository and .gpu_site/ go first on the import path: no install is needed.
# A crash (not a failed section: those are recorded) is followed by one --resume run that
# records the crashed section and runs the sections after it.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
if [[ " $* " != *" --prepare "* && -d "$repo/.gpu_site" ]]; then
    export PYTHONPATH="$repo/.gpu_site:$PYTHONPATH"
fi
export PYTHONUNBUFFERED=1
out=""
for arg in "$@"; do [[ $arg == -* ]] || out=$arg; done
if [[ -z $out ]]; then
    exec "$python" "$repo/scripts/gpu_check.py" "$@"
fi
mkdir -p "$out"
"$python" "$repo/scripts/gpu_check.py" "$@" 2>&1 | tee "$out/gpu_check.log"
status=${PIPESTATUS[0]}
if [[ $status -ne 0 && $status -ne 2 && -f $out/results.json ]]; then
    echo "[gpu_check] the run ended with status $status: resuming after the crashed section"
    "$python" "$repo/scripts/gpu_check.py" "$@" --resume --crashed-status "$status" 2>&1 |
        tee -a "$out/gpu_check.log"
    status=${PIPESTATUS[0]}
fi
exit "$status"
