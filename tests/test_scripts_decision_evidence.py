"""Tests for scripts/decision_table.py and scripts/decision_evidence.sh (the decisions on the
evidence study): the tables against a float64 hand computation on fabricated hl-eval results,
the refusals, the figure, and a dry run of the whole pipeline (tiny runs, slow)."""

from __future__ import annotations

import doctest
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _compare_runs import check_png, fake_run, read_csv

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))
import decision_table  # noqa: E402

LEVELS = ("kind", "family", "class")
KEYS = [f"miou/{level}" for level in LEVELS] + ["severity", "serious"]
SEEDS = ("0", "1", "2", "3", "4")
T_975_DF4 = 2.7764451051977987  # t(0.975, 4): t_cdf_df4 of it is 0.975 (checked below)
GRID = [round(0.5 + i / 20, 2) for i in range(10)]  # 0.50, 0.55, ..., 0.95
SETTINGS = [
    ("flat", "marginal"),
    ("flat", "crm"),
    ("hierarchical", "marginal"),
    ("hierarchical", "crm"),
]
COMPARISONS = [(SETTINGS[1], SETTINGS[0]), (SETTINGS[2], SETTINGS[0]), (SETTINGS[3], SETTINGS[1])]
COMPARISONS.append((SETTINGS[3], SETTINGS[0]))


def t_cdf_df4(t: float) -> float:
    """Student's t CDF with 4 degrees of freedom, in closed form."""
    u = 1 + t * t / 4
    return 0.5 + 3 / 8 * t / math.sqrt(u) * (1 - t * t / (12 * u))


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Return the mean and the 95% CI half-width of 5 values, by hand in float64."""
    return float(values.mean()), T_975_DF4 * float(values.std(ddof=1)) / math.sqrt(5)


def paired(new: np.ndarray, old: np.ndarray) -> tuple[float, float, float]:
    """Return the mean difference, its CI half-width and the two-sided paired t-test's p."""
    mean, ci = mean_ci(new - old)
    t = mean / (float((new - old).std(ddof=1)) / math.sqrt(5))
    return mean, ci, 2 * (1 - t_cdf_df4(abs(t)))


def fabricated_values(seed: int = 0) -> dict[tuple[str, str, str], np.ndarray]:
    """Return random values per (loss, decode, key): 5 seeds each, float64."""
    rng = np.random.default_rng(seed)
    return {
        (loss, decode, key): rng.uniform(1.0, 2.5, 5) if key == "severity" else rng.random(5)
        for loss in decision_table.LOSSES
        for decode in decision_table.DECODINGS
        for key in KEYS
    }


def write_sweep(
    root: Path,
    values: dict[tuple[str, str, str], np.ndarray],
    areas: dict[str, np.ndarray],
    temperatures: dict[str, np.ndarray],
    seeds: dict[str, tuple[str, ...]] | None = None,
) -> Path:
    """Write a sweep of flat and hierarchical runs as hl-train and hl-eval (temperature=fit)
    leave them: job folders, best and last checkpoints, eval/results.json, eval/hpr_curve.csv.
    Seed i's curve of a loss is hP = 0.9 - (i + 1) x, hR = (i + 1) x with x = 0.01 (flat) or
    0.02 (hierarchical), down to threshold 0.8; no claims above."""
    job = 0
    for loss in decision_table.LOSSES:
        for seed in (seeds or {}).get(loss, SEEDS):
            i = int(seed)
            leaf = float(values[loss, "marginal", "miou/class"][i])
            run = fake_run(
                root / f"{job}_loss={loss},seed={seed}",
                [f"loss={loss}", f"seed={seed}", "experiment=evidence"],
                level_names=list(LEVELS),
                test_miou=leaf,
                config={"seed": i},
            )
            (run / "checkpoints").mkdir()
            for name in ("epoch002.ckpt", "last.ckpt"):
                (run / "checkpoints" / name).write_bytes(b"")
            decodings = {
                decode: {key: float(values[loss, decode, key][i]) for key in KEYS}
                for decode in decision_table.DECODINGS
            }
            nodes = {"auc": float(areas[loss][i]), "temperature": float(temperatures[loss][i])}
            nodes["fit"] = {"split": "val"}
            results = {
                "checkpoint": str(run / "checkpoints" / "epoch002.ckpt"),
                "decodings": decodings,
                "nodes": nodes,
            }
            (run / "eval").mkdir()
            (run / "eval" / "results.json").write_text(json.dumps(results))
            step = 0.01 if loss == "flat" else 0.02
            lines = ["threshold,hp,hr,hf"] + [
                f"{t},{0.9 - (i + 1) * step},{(i + 1) * step},0" if t <= 0.8 else f"{t},0,0,0"
                for t in GRID
            ]
            (run / "eval" / "hpr_curve.csv").write_text("\n".join(lines) + "\n")
            job += 1
    return root


@pytest.fixture
def fabricated(tmp_path: Path) -> tuple[Path, dict, dict, dict]:
    values = fabricated_values()
    rng = np.random.default_rng(1)
    areas = {loss: rng.random(5) for loss in decision_table.LOSSES}
    temperatures = {loss: rng.uniform(0.5, 2.0, 5) for loss in decision_table.LOSSES}
    return write_sweep(tmp_path / "sweep", values, areas, temperatures), values, areas, temperatures


def table_cells(text: str, heading: str) -> dict[str, list[str]]:
    """Return the rows (title: cells) of the Markdown table that follows ``heading``."""
    lines = text[text.index(heading) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| value"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def shown(mean: float, ci: float, p: float | None = None, sign: str = "") -> str:
    return f"{mean:{sign}.4f} ± {ci:.4f}" + ("" if p is None else f" (p={p:.2g})")


def test_the_reference_t_quantile_is_the_975_point() -> None:
    assert t_cdf_df4(T_975_DF4) == pytest.approx(0.975, abs=1e-15)
    assert t_cdf_df4(0.0) == 0.5 and t_cdf_df4(-1.5) == pytest.approx(1 - t_cdf_df4(1.5))


def test_tables_equal_a_float64_hand_computation(fabricated, capsys) -> None:
    sweep, values, areas, temperatures = fabricated
    decision_table.main([str(sweep)])
    text = (sweep / "decisions.md").read_text()
    assert capsys.readouterr().out == text
    titles = ["mIoU kind", "mIoU family", "mIoU class (leaf)", "mistake severity", "serious share"]
    assert (
        "| value | flat + marginal | flat + crm | hierarchical + marginal | hierarchical + crm |"
        in text
    )
    assert (
        "| value | flat+crm − flat+marginal | hierarchical+marginal − flat+marginal "
        "| hierarchical+crm − flat+crm | hierarchical+crm − flat+marginal |"
    ) in text
    summary = table_cells(text, "Mean ± 95% CI over 5 seeds")
    assert list(summary) == titles
    for title, key in zip(titles, KEYS, strict=True):
        expected = [shown(*mean_ci(values[loss, decode, key])) for loss, decode in
                    SETTINGS]  # fmt: skip
        assert summary[title] == expected, title
    differences = table_cells(text, "Paired differences")
    for title, key in zip(titles, KEYS, strict=True):
        expected = [
            shown(*paired(values[(*new, key)], values[(*old, key)]), sign="+")
            for new, old in COMPARISONS
        ]
        assert differences[title] == expected, title
    per_seed = table_cells(text, "hierarchical+crm − flat+crm, per seed")
    new, old = values["hierarchical", "crm", "serious"], values["flat", "crm", "serious"]
    assert per_seed["serious share"] == [
        *(f"{d:+.4f}" for d in new - old),
        shown(*paired(new, old), sign="+"),
    ]
    curves = table_cells(text, "Operating curves of the node predictions")
    assert curves["area flat"] == [
        *(f"{a:.4f}" for a in areas["flat"]),
        shown(*mean_ci(areas["flat"])),
    ]
    difference = areas["hierarchical"] - areas["flat"]
    assert curves["area hierarchical − flat"] == [
        *(f"{d:+.4f}" for d in difference),
        shown(*paired(areas["hierarchical"], areas["flat"]), sign="+"),
    ]
    assert curves["temperature hierarchical"][-1] == shown(*mean_ci(temperatures["hierarchical"]))
    assert "from logits / a temperature fitted on each run's validation split" in text
    assert "in 10 of 10 runs (largest difference 0)." in text
    metrics = sweep / "9_loss=hierarchical,seed=4" / "csv" / "metrics.csv"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(line for line in lines if not line.startswith("3,")))  # untested
    leaf = float(values["flat", "marginal", "miou/class"][3])
    results = sweep / "3_loss=flat,seed=3" / "eval" / "results.json"
    saved = results.read_text()
    assert f'"miou/class": {leaf!r}' in saved
    results.write_text(saved.replace(f'"miou/class": {leaf!r}', '"miou/class": 2.0', 1))
    decision_table.main([str(sweep)])
    assert (
        f"in 8 of 10 runs (largest difference {2.0 - leaf:.2g}); it differs in 3_loss=flat,"
        "seed=3; no test value of hl-train in 9_loss=hierarchical,seed=4."
    ) in (sweep / "decisions.md").read_text()
    rows = read_csv(sweep / "decisions.csv")
    assert len(rows) == 20 and rows[0]["run"] == "0_loss=flat,seed=0"
    row = next(
        r for r in rows if (r["loss"], r["seed"], r["decode"]) == ("hierarchical", "3", "crm")
    )
    assert float(row["severity"]) == pytest.approx(
        values["hierarchical", "crm", "severity"][3], rel=1e-5
    )
    assert float(row["hpr_auc"]) == pytest.approx(areas["hierarchical"][3], rel=1e-5)


def test_the_figure_draws_the_mean_curves(fabricated) -> None:
    pytest.importorskip("matplotlib")
    sweep = fabricated[0]
    figure = sweep / "figures" / "hpr_curves.png"
    figure.parent.mkdir()
    decision_table.main([str(sweep), "--figure", str(figure)])
    check_png(figure)
    assert f"Figure: {figure} (each loss's mean curve)." in (sweep / "decisions.md").read_text()


def test_the_mean_curve_averages_the_points_every_seed_has() -> None:
    runs = [
        decision_table.Evaluation("flat", str(i), Path(), LEVELS, {}, 0.0, 1.0, True, curve, None)
        for i, curve in enumerate(
            [
                ((0.5, 0.80, 0.30), (0.6, 0.90, 0.20), (0.7, 0.0, 0.0)),
                ((0.5, 0.70, 0.40), (0.6, 0.85, 0.25), (0.7, 1.0, 0.1)),
            ]
        )
    ]
    points = decision_table.mean_curve(runs)
    assert [p[0] for p in points] == [0.5, 0.6]  # 0.7: seed 0 has no point there
    assert points[1][1:] == pytest.approx((0.875, 0.225), abs=1e-12)
    other = decision_table.Evaluation(
        "flat", "2", Path(), LEVELS, {}, 0.0, 1.0, True, ((0.55, 1, 1),), None
    )
    with pytest.raises(decision_table.DecisionError, match="different thresholds"):
        decision_table.mean_curve([*runs, other])


def run_main(sweep: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the table script on ``sweep``; return its one error line (it must exit 1)."""
    with pytest.raises(SystemExit) as stopped:
        decision_table.main([str(sweep), *args])
    assert stopped.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("decision_table.py: error: ")
    return lines[0]


def test_bad_sweeps_are_refused_with_the_file_named(fabricated, capsys) -> None:
    sweep = fabricated[0]
    run = sweep / "7_loss=hierarchical,seed=2"
    (run / "checkpoints" / "epoch005.ckpt").write_bytes(b"")
    assert run_main(sweep, capsys, "--checkpoints").endswith(
        f"{run / 'checkpoints'}: one best checkpoint epochNNN.ckpt expected, found "
        "epoch002.ckpt, epoch005.ckpt"
    )
    (run / "checkpoints" / "epoch002.ckpt").unlink()
    assert run_main(sweep, capsys).endswith(
        f"{run / 'eval' / 'results.json'}: evaluates epoch002.ckpt, not the best epoch005.ckpt"
    )
    (run / "eval" / "results.json").unlink()
    assert run_main(sweep, capsys).endswith(
        f"{run / 'eval' / 'results.json'}: missing; evaluate the run first (decision_evidence.sh)"
    )
    (run / "checkpoints" / "epoch005.ckpt").rename(run / "checkpoints" / "epoch002.ckpt")
    (run / "eval" / "results.json").write_text("{")
    assert "7_loss=hierarchical,seed=2/eval/results.json: not hl-eval's results" in run_main(
        sweep, capsys
    )
    flat = sweep / "0_loss=flat,seed=0" / "eval" / "results.json"
    (run / "eval" / "results.json").write_text(flat.read_text())
    results = json.loads(flat.read_text())
    del results["decodings"]["crm"]
    flat.write_text(json.dumps(results))
    assert run_main(sweep, capsys).endswith(f"{flat}: no decoding crm; rerun hl-eval")


def test_a_sweep_without_one_of_the_losses_is_refused(tmp_path, capsys) -> None:
    values = fabricated_values()
    ones = {loss: np.ones(5) for loss in decision_table.LOSSES}
    sweep = write_sweep(tmp_path, values, ones, ones, seeds={"hierarchical": ()})
    assert run_main(sweep, capsys).endswith(
        f"{sweep}: one configuration of loss=hierarchical runs expected, found none"
    )


def test_seeds_without_a_pair_are_left_out_and_named(tmp_path) -> None:
    values = fabricated_values()
    ones = {loss: np.ones(5) for loss in decision_table.LOSSES}
    seeds = {"flat": ("0", "1", "2"), "hierarchical": ("1", "2", "3")}
    sweep = write_sweep(tmp_path, values, ones, ones, seeds=seeds)
    decision_table.main([str(sweep)])
    text = (sweep / "decisions.md").read_text()
    assert text.startswith("Seeds 1 2 (2 paired")
    assert "Left out (their seed has no run of the other loss): 0_loss=flat,seed=0, " in text
    assert "5_loss=hierarchical,seed=3." in text
    assert table_cells(text, "Mean ± 95% CI over 2 seeds")["mistake severity"][0] == shown(
        float(values["flat", "marginal", "severity"][1:3].mean()),
        math.tan(0.475 * math.pi)
        * float(values["flat", "marginal", "severity"][1:3].std(ddof=1))
        / math.sqrt(2),
    )  # t(0.975, 1) = tan(0.475 pi)


def test_the_script_module_examples_run() -> None:
    assert doctest.testmod(decision_table).failed == 0


def run_script(
    *args: str, cwd: Path | None = None, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run decision_evidence.sh with ``args`` and ``env`` added to its environment: this
    Python and its console scripts, one thread."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    python = {"PYTHON": sys.executable, "PATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["bash", str(SCRIPTS / "decision_evidence.sh"), *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **python, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_shell_script_refuses_overrides_of_an_existing_sweep(tmp_path) -> None:
    result = run_script("trainer=gpu", SWEEP=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        f"decision_evidence.sh: hl-train overrides (trainer=gpu) are for a new sweep, "
        f"not SWEEP={tmp_path}\n"
    )


def test_the_shell_script_refuses_a_path_hydra_cannot_take(tmp_path) -> None:
    values = fabricated_values()
    ones = {loss: np.ones(5) for loss in decision_table.LOSSES}
    sweep = write_sweep(tmp_path / "it's", values, ones, ones)
    result = run_script(SWEEP=str(sweep), HL_EVAL="false")
    assert result.returncode == 1
    assert result.stderr.endswith("a path with ' or \\ cannot be passed to Hydra\n")


FAKE_EVAL = """\
ckpt=${1#ckpt_path=}
echo "start $ckpt" >>"$EVAL_LOG"
sleep 1
echo "end $ckpt" >>"$EVAL_LOG"
echo "evaluated $ckpt"
echo "note $ckpt" >&2
[[ $ckpt != *"$FAIL"* ]] || exit 3
"""


def test_hl_eval_runs_eval_jobs_at_once_and_a_failure_stops_the_script(tmp_path) -> None:
    """EVAL_JOBS=3 on the 10 checkpoints, the 4th of which fails (a stand-in for hl-eval):
    never more than 3 at once; each one's output in checkpoint order; the 4th's failure is
    seen once the first three have ended, when the 5th and 6th have started (into the freed
    places) and the rest have not; the script then ends with its status, before the tables."""
    values = fabricated_values()
    ones = {loss: np.ones(5) for loss in decision_table.LOSSES}
    sweep = write_sweep(tmp_path / "sweep", values, ones, ones)
    (tmp_path / "fake_eval.sh").write_text(FAKE_EVAL)
    log = tmp_path / "eval.log"
    result = run_script(
        SWEEP=str(sweep),
        HL_EVAL=f"bash {tmp_path / 'fake_eval.sh'}",
        EVAL_JOBS="3",
        EVAL_LOG=str(log),
        FAIL="/3_loss=flat,seed=3/",
    )
    assert result.returncode == 3, result.stderr[-3000:]
    runs = sorted((p.name for p in sweep.iterdir() if p.is_dir()), key=decision_table.natural_key)
    checkpoints = [f"'{sweep / run / 'checkpoints' / 'epoch002.ckpt'}'" for run in runs[:6]]
    assert result.stdout.splitlines() == [f"evaluated {c}" for c in checkpoints]
    assert [line for line in result.stderr.splitlines() if line.startswith("note ")] == [
        f"note {c}" for c in checkpoints
    ]
    failed = sweep / runs[3] / "checkpoints" / "epoch002.ckpt"
    assert result.stderr.endswith(
        f"decision_evidence.sh: hl-eval of {failed} ended with status 3 (its output above)\n"
    )
    running, most = set(), 0
    for line in log.read_text().splitlines():
        event, checkpoint = line.split(" ", 1)
        if event == "start":
            running.add(checkpoint)
        else:
            running.remove(checkpoint)  # KeyError: an end before its start
        most = max(most, len(running))
    assert most == 3 and not running
    assert sorted(line for line in log.read_text().splitlines() if line.startswith("start")) == (
        sorted(f"start {c}" for c in checkpoints)
    )
    assert not (sweep / "decisions.md").exists()


def test_the_shell_script_refuses_a_bad_number_of_eval_jobs(tmp_path) -> None:
    result = run_script(SWEEP=str(tmp_path), EVAL_JOBS="0")
    assert result.returncode == 2
    assert result.stderr == (
        "decision_evidence.sh: EVAL_JOBS=0: give how many hl-eval run at once (1, 2, ...)\n"
    )


@pytest.mark.slow
def test_the_dry_run_runs_the_whole_pipeline(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_script(DRY_RUN="1", OUT=str(sweep), cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(path.name for path in sweep.iterdir() if path.is_dir())
    assert jobs == [
        "0_loss=hierarchical,seed=0",
        "1_loss=hierarchical,seed=1",
        "2_loss=flat,seed=0",
        "3_loss=flat,seed=1",
    ]
    for job in jobs:
        results = json.loads((sweep / job / "eval" / "results.json").read_text())
        assert re.fullmatch(r".*/checkpoints/epoch000\.ckpt", results["checkpoint"])
        assert set(results["decodings"]) == {"marginal", "crm"} and "fit" in results["nodes"]
    text = (sweep / "decisions.md").read_text()
    assert text in result.stdout
    assert text.startswith("Seeds 0 1 (2 paired")
    assert "in 4 of 4 runs" in text  # hl-eval's marginal values are hl-train's test values
    assert len(read_csv(sweep / "decisions.csv")) == 8
    assert "from logits / a temperature fitted on each run's validation split" in text
    assert result.stdout.rstrip().endswith(
        f"decisions: {sweep}/decisions.md and {sweep}/decisions.csv"
    )
