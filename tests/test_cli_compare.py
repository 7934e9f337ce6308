"""Tests for hl_lightning/cli/compare.py: hl-compare's figures and tables.

Real runs come from one 2-job hl-train sweep (hierarchical vs flat, 2 epochs of tiny
data), shared by the slow tests; the fast tests use hand-written metrics files.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from hl_lightning.cli import compare

LEVELS = ("kind", "family", "class")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, tiny_run: list[str]) -> Path:
    """Return the folder of a real sweep: jobs 0_loss=hierarchical and 1_loss=flat."""
    script = Path(sys.executable).with_name("hl-train")
    if not script.exists():
        pytest.skip(f"the hl-train console script is not installed next to {sys.executable}")
    root = tmp_path_factory.mktemp("compare")
    args = [str(script), "-m", *tiny_run, "trainer.max_epochs=2", "loss=hierarchical,flat"]
    args.append(f"hydra.sweep.dir={root / 'sw'}")
    result = subprocess.run(
        args,
        cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sw"


def check_png(path: Path, min_size: tuple[int, int] = (400, 250)) -> None:
    """Assert that ``path`` is a valid, non-blank PNG of at least ``min_size`` pixels."""
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def fake_run(
    path: Path,
    overrides: list[str],
    levels: tuple[str, ...] = LEVELS,
    epochs: int = 3,
    tested: bool = True,
    level_names: list[str] | None = None,
) -> Path:
    """Write a run folder with metrics like hl-train's CSV logger (alphabetical columns)."""
    keys = [f"{s}/loss/{lv}" for s in ("train", "val", "test") for lv in levels]
    keys += [f"{s}/miou/{lv}" for s in ("val", "test") for lv in levels]
    keys += ["val/severity", "val/serious", "test/severity", "test/serious"]
    rows = []
    for epoch in range(epochs):
        rows.append({f"val/{m}/{lv}": 0.1 * (epoch + 1) for m in ("loss", "miou") for lv in levels})
        rows[-1].update({"val/severity": 2.0 - epoch, "val/serious": 0.5})
        rows.append({f"train/loss/{lv}": 3.0 - epoch for lv in levels})
        for row in rows[-2:]:
            row.update(epoch=epoch, step=epoch)
    if tested:
        rows.append({f"test/{m}/{lv}": 0.9 for m in ("loss", "miou") for lv in levels})
        rows[-1].update({"test/severity": 1.25, "test/serious": 0.125, "epoch": epochs, "step": 9})
    (path / "csv").mkdir(parents=True)
    with (path / "csv" / "metrics.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["epoch", "step", *sorted(keys)])
        writer.writeheader()
        writer.writerows(rows)
    (path / ".hydra").mkdir()
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"hierarchy": {"level_names": level_names}}
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    return path


# ---------------------------------------------------------------------------- real runs
@pytest.mark.slow
def test_multirun_dir_gives_figures_and_tables(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures"
    assert compare.main([str(sweep), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == [
        "run",
        "stage",
        *(f"miou/{lv}" for lv in LEVELS),
        "severity",
        "serious",
    ]
    assert printed[1].startswith("loss=hierarchical ") and printed[2].startswith("loss=flat ")
    assert printed[1].split()[1] == "test"
    for name in ("loss_curves.png", "miou_curves.png"):
        check_png(out / name)
    rows = read_csv(out / "comparison.csv")
    assert [row["run"] for row in rows] == ["loss=hierarchical", "loss=flat"]
    metrics = read_csv(sweep / "0_loss=hierarchical" / "csv" / "metrics.csv")
    tested = next(row for row in metrics if row["test/miou/class"])
    assert rows[0]["miou/class"] == f"{float(tested['test/miou/class']):.4f}"
    assert rows[0]["severity"] == f"{float(tested['test/severity']):.4f}"
    markdown = (out / "comparison.md").read_text().splitlines()
    assert markdown[0].startswith("| run | stage | miou/kind |")
    assert markdown[2].startswith("| loss=hierarchical | test |")


@pytest.mark.slow
def test_two_run_dirs_write_into_the_first(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [sweep / "1_loss=flat", sweep / "0_loss=hierarchical"]
    assert compare.main([str(run) for run in runs] + ["--metric", "acc"]) == 0
    printed = capsys.readouterr().out
    assert "acc/kind" in printed and printed.index("loss=flat") < printed.index("loss=hier")
    for name in ("loss_curves.png", "acc_curves.png", "comparison.csv", "comparison.md"):
        assert (runs[0] / name).is_file()
    check_png(runs[0] / "acc_curves.png")


@pytest.mark.slow
def test_default_callbacks_draw_prediction_images(sweep: Path) -> None:
    for job in ("0_loss=hierarchical", "1_loss=flat"):
        pngs = sorted(p.name for p in (sweep / job / "predictions").iterdir())
        assert pngs == ["epoch_000.png", "epoch_001.png"]  # every epoch by default
        check_png(sweep / job / "predictions" / "epoch_001.png")


# ---------------------------------------------------------------------------- hand-made runs
def test_runs_are_found_in_job_order_and_labelled_by_differing_overrides(tmp_path: Path) -> None:
    common = ["experiment=quick", "data.num_train=16"]
    for job, seed in (("0_a", 0), ("2_b", 2), ("10_c", 10)):
        fake_run(tmp_path / "multi" / job, [*common, f"seed={seed}", f"+extra={job}"])
    runs = compare.load_runs([tmp_path / "multi"])
    assert [run.path.name for run in runs] == ["0_a", "2_b", "10_c"]
    assert [run.label for run in runs] == [
        "seed=0, +extra=0_a",
        "seed=2, +extra=2_b",
        "seed=10, +extra=10_c",
    ]


def test_identical_overrides_fall_back_to_folder_names(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "a", ["loss=flat"])
    b = fake_run(tmp_path / "b", ["loss=flat"])
    assert [run.label for run in compare.load_runs([a, b])] == ["a", "b"]
    single = compare.load_runs([fake_run(tmp_path / "c", ["loss=flat", "seed=1"])])
    assert single[0].label == "c"


def test_levels_follow_the_config_order_else_natural_order(tmp_path: Path) -> None:
    named = fake_run(tmp_path / "named", [], level_names=list(LEVELS))
    assert compare.load_runs([named])[0].levels == LEVELS  # CSV columns are alphabetical
    numbered = fake_run(tmp_path / "numbered", [], levels=tuple(f"level{i}" for i in (10, 2, 0)))
    assert compare.load_runs([numbered])[0].levels == ("level0", "level2", "level10")


def test_untested_runs_report_the_last_validation(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "r", ["loss=flat"], tested=False, level_names=list(LEVELS))
    (row,) = compare.summary_rows(compare.load_runs([run]))
    assert row["stage"] == "val"
    assert row["miou/class"] == "0.3000" and row["severity"] == "0.0000"


def test_runs_with_other_levels_show_missing_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = fake_run(tmp_path / "a", ["hierarchy=synthetic"], level_names=list(LEVELS))
    b = fake_run(tmp_path / "b", ["hierarchy=flat"], levels=("level0",))
    assert compare.main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    rows = read_csv(tmp_path / "out" / "comparison.csv")
    assert list(rows[0])[2:6] == ["miou/kind", "miou/family", "miou/class", "miou/level0"]
    assert rows[0]["miou/level0"] == "-" and rows[1]["miou/kind"] == "-"
    check_png(tmp_path / "out" / "loss_curves.png")


def test_errors_exit_non_zero_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert compare.main([str(tmp_path / "empty")]) == 1
    assert "no csv/metrics.csv in it or below" in capsys.readouterr().err
    run = fake_run(tmp_path / "r", [])
    assert compare.main([str(run), "--metric", "iou"]) == 1
    assert "no per-level metric 'iou'" in capsys.readouterr().err
    assert not (run / "loss_curves.png").exists()


def test_missing_matplotlib_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    run = fake_run(tmp_path / "r", [])
    with pytest.raises(SystemExit, match=r'pip install "hl_lightning\[plots\]"'):
        compare.main([str(run)])
