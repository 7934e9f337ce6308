#!/usr/bin/env bash
# Decisions on the evidence study: the flat and the hierarchical loss of experiment=evidence
# over seeds 0-4 (paired), each run's best checkpoint (by val/miou, the one hl-train tested)
# evaluated by hl-eval with the decodings marginal and crm, and the operating curve of its
# node predictions after a temperature fitted on the validation split; then the tables of
# docs/results.md (SWEEP/decisions.md, decisions.csv) and the figure of both mean curves
# (scripts/decision_table.py). Further arguments are hl-train overrides (a new sweep only):
#   bash scripts/decision_evidence.sh                   # the sweep (10 runs), hl-eval, tables
#   SWEEP=DIR bash scripts/decision_evidence.sh         # an existing sweep: hl-eval and tables
#   SWEEP=DIR FIGURE=docs/figures/hpr_curves.png bash scripts/decision_evidence.sh
#   DRY_RUN=1 bash scripts/decision_evidence.sh         # a minute or two: tiny runs, 2 seeds
# Environment: OUT (where a new sweep goes), TEMPERATURE (hl-eval's temperature: fit, the
# default; null for the network's own probabilities; or a number), EVAL_ARGS (more hl-eval
# overrides, e.g. "device=cuda"), EVAL_JOBS (how many hl-eval run at once, default 2: one's
# seconds of start-up overlap another's work; 1 for one at a time), PYTHON, HL_TRAIN,
# HL_EVAL (the commands). Each hl-eval's output is shown, in checkpoint order, when it ends;
# the first that fails stops the script (once those already started have ended).
set -euo pipefail

here=$(dirname "$0")
python=${PYTHON:-python}
eval_jobs=${EVAL_JOBS:-2}
if [[ ! $eval_jobs =~ ^[1-9][0-9]*$ ]]; then
  echo "decision_evidence.sh: EVAL_JOBS=$eval_jobs: give how many hl-eval run at once" \
    "(1, 2, ...)" >&2
  exit 2
fi

# A path as a quoted Hydra override value: job folders are named like 0_loss=flat,seed=0,
# and an unquoted ',' or '=' means something else to Hydra.
hydra_value() {
  case $1 in
    *"'"* | *\\*)
      echo "decision_evidence.sh: $1: a path with ' or \\ cannot be passed to Hydra" >&2
      return 1
      ;;
  esac
  printf "'%s'" "$1"
}

sweep=${SWEEP:-}
if [[ -z $sweep ]]; then
  tiny=()
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    sweep=${OUT:-multirun/decisions_dry_run/$(date +%Y-%m-%d_%H-%M-%S)}
    tiny=(seed=0,1 data.num_train=128 data.num_val=16 data.num_test=16 data.image_size=32
      backbone.width=4 trainer.max_epochs=1 logger=csv)
  else
    sweep=${OUT:-multirun/decisions/$(date +%Y-%m-%d_%H-%M-%S)}
  fi
  sweep_dir=$(hydra_value "$sweep")
  start=$(date +%s)
  "${HL_TRAIN:-hl-train}" -m experiment=evidence loss=hierarchical,flat "hydra.sweep.dir=$sweep_dir" \
    ${tiny[@]+"${tiny[@]}"} "$@"
  echo "decisions: the sweep took $(($(date +%s) - start)) s"
elif (($#)); then
  echo "decision_evidence.sh: hl-train overrides ($*) are for a new sweep, not SWEEP=$sweep" >&2
  exit 2
else
  hydra_value "$sweep" >/dev/null
fi

if [[ -n ${HL_EVAL:-} ]]; then
  read -ra hl_eval <<<"$HL_EVAL"
elif command -v hl-eval >/dev/null; then
  hl_eval=(hl-eval)
else
  hl_eval=("$python" -m hl_lightning.cli.evaluate)
fi
read -ra eval_args <<<"${EVAL_ARGS:-}"

checkpoints=$("$python" "$here/decision_table.py" "$sweep" --checkpoints)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
running=() # the hl-eval running, oldest first: "process id:job number" (its logs' name)
evaluated=() # per job number, its checkpoint
failed=0     # the status of the first hl-eval that failed
failure=""

# Wait for the oldest hl-eval running, show its output; remember the first failure.
finish_oldest() {
  local pid=${running[0]%%:*} job=${running[0]#*:} status=0
  wait "$pid" || status=$?
  cat "$logs/$job.out"
  cat "$logs/$job.err" >&2
  running=("${running[@]:1}")
  if ((status && !failed)); then
    failed=$status
    failure="hl-eval of ${evaluated[job]} ended with status $status (its output above)"
  fi
}

start=$(date +%s)
while IFS= read -r checkpoint; do
  ckpt=$(hydra_value "$checkpoint")
  out=$(hydra_value "$(dirname "$(dirname "$checkpoint")")/eval")
  while ((${#running[@]} >= eval_jobs)) && ((!failed)); do finish_oldest; done
  ((!failed)) || break
  "${hl_eval[@]}" "ckpt_path=$ckpt" "decode=[marginal,crm]" "temperature=${TEMPERATURE:-fit}" \
    "hydra.run.dir=$out" ${eval_args[@]+"${eval_args[@]}"} </dev/null \
    >"$logs/${#evaluated[@]}.out" 2>"$logs/${#evaluated[@]}.err" &
  running+=("$!:${#evaluated[@]}")
  evaluated+=("$checkpoint")
done <<<"$checkpoints"
while ((${#running[@]})); do finish_oldest; done
if ((failed)); then
  echo "decision_evidence.sh: $failure" >&2
  exit "$failed"
fi
echo "decisions: hl-eval took $(($(date +%s) - start)) s"
"$python" "$here/decision_table.py" "$sweep" ${FIGURE:+--figure "$FIGURE"}
echo "decisions: $sweep/decisions.md and $sweep/decisions.csv"
