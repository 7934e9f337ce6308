"""Tests for hl_lightning/cli/evaluate.py and conf/eval.yaml: hl-eval, a checkpoint's
decodings side by side, its node predictions, curve and temperature.

Configs are composed in-process with Hydra's compose API and run with ``evaluate(cfg)``
on a checkpoint in a run directory laid out as hl-train's; a slow test trains a tiny run
with hl-train and evaluates it with the console command.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from _compose import make_config
from _trainer import quiet_trainer

from hl_lightning.cli.evaluate import EvalError, evaluate, match_classes
from hl_lightning.data import SegmentationDataModule, SyntheticDataModule
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.checkpoints import CheckpointError
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.metrics import (
    HierarchicalOperatingCurve,
    HierarchicalPrecisionRecall,
    HierarchicalSegmentationMetrics,
    TemperatureScaling,
)

DATA = {"num_train": 8, "num_val": 8, "num_test": 8, "image_size": 32, "batch_size": 4}
RUN_CONFIG = """\
seed: 3
data:
  _target_: hl_lightning.data.SyntheticDataModule
  num_train: 8
  num_val: 8
  num_test: 8
  image_size: 32
  batch_size: 4
  num_workers: 0
  seed: ${seed}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Return a run directory as hl-train writes it: checkpoints/last.ckpt of a one-layer
    network after a training step, and .hydra/config.yaml with its (tiny) data."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("run")
    dm = SyntheticDataModule(**DATA, seed=3)
    backbone = {
        "_target_": "torch.nn.Conv2d",
        "in_channels": 3,
        "out_channels": dm.num_classes,
        "kernel_size": 3,
        "padding": 1,
    }
    model = HierarchicalSegmenter(backbone, dm.hierarchy)
    trainer = quiet_trainer(folder, max_epochs=1, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    (folder / "checkpoints").mkdir()
    trainer.save_checkpoint(folder / "checkpoints" / "last.ckpt")
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text(RUN_CONFIG)
    torch.set_num_threads(threads)
    yield folder


def test_decodings_side_by_side_equal_the_metrics_on_the_runs_test_split(
    run: Path, tmp_path: Path
) -> None:
    ckpt = run / "checkpoints" / "last.ckpt"
    overrides = [f"ckpt_path={ckpt}", "decode=[marginal,crm]", "temperature=fit", "thresholds=10"]
    report = evaluate(make_config(overrides, tmp_path, "eval"))
    # the same numbers, computed by hand from the run's data and the checkpoint
    model = HierarchicalSegmenter.load_from_checkpoint(ckpt).eval()
    dm = SyntheticDataModule(**DATA, seed=3)
    h = model.hierarchy
    scaling = TemperatureScaling(h)
    dm.setup("validate")
    with torch.no_grad():
        for images, masks in dm.val_dataloader():
            scaling.update(model(images), masks)
    temperature = scaling.fit().temperature
    want = {m: HierarchicalSegmentationMetrics(h, decode=m) for m in ("marginal", "crm")}
    nodes, curve = HierarchicalPrecisionRecall(h, 0.5), HierarchicalOperatingCurve(h, 10)
    dm.setup("test")
    with torch.no_grad():
        for images, masks in dm.test_dataloader():
            logits = model(images)
            for metric in want.values():
                metric.update(logits, masks)
            nodes.update(logits / temperature, masks)
            curve.update(logits / temperature, masks)
    assert report.temperature == pytest.approx(temperature)
    assert list(report.decodings) == ["marginal", "crm"]
    for method, metric in want.items():
        for key, value in metric.compute().items():
            torch.testing.assert_close(report.decodings[method][key], value, msg=key)
    for key, value in nodes.compute().items():
        torch.testing.assert_close(report.nodes[key], value)
    torch.testing.assert_close(report.curve.hp, curve.compute().hp)
    # the files
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["decodings"]) == {"marginal", "crm"}
    assert {"hp", "hr", "hf", "auc", "threshold", "temperature", "fit"} <= set(results["nodes"])
    assert results["nodes"]["fit"]["pixels"] > 0
    with (tmp_path / "decodings.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["decode"] for row in rows] == ["marginal", "crm"]
    assert float(rows[1]["severity"]) == pytest.approx(float(want["crm"].compute()["severity"]))
    assert len((tmp_path / "hpr_curve.csv").read_text().splitlines()) == 11
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "hpr_curve.png").stat().st_size > 0


def test_other_data_a_split_and_a_few_batches(run: Path, tmp_path: Path) -> None:
    overrides = [
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        "data=synthetic",
        *(f"data.{key}={value}" for key, value in DATA.items()),
        "split=val",
        "max_batches=1",
        "decode=leaf",
        "temperature=2.0",
    ]
    report = evaluate(make_config(overrides, tmp_path, "eval"))
    assert (report.split, report.batches, list(report.decodings)) == ("val", 1, ["leaf"])
    assert report.temperature == 2.0 and report.ece_at_temperature is not None


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ([], EvalError, r"no checkpoint: give ckpt_path=PATH"),
        (["ckpt_path=missing.ckpt"], CheckpointError, r"no checkpoint file missing\.ckpt"),
        (["decode=[marginal,argmax]"], EvalError, r"unknown decoding method 'argmax'; valid"),
        (["threshold=1.0"], EvalError, r"threshold=1\.0 is outside \[0\.5, 1\)"),
        (["thresholds=[0.9,0.6]"], EvalError, r"thresholds must increase"),
        (["temperature=warm"], EvalError, r"temperature='warm': use fit, a positive number"),
        (["temperature=-1"], EvalError, r"temperature=-1: use fit"),
        (["split=train"], EvalError, r"split='train': use test or val"),
        (["max_batches=0"], EvalError, r"max_batches=0: use a positive number"),
    ],
)
def test_bad_options_are_named_before_any_work(
    run: Path, tmp_path: Path, overrides: list[str], error: type, message: str
) -> None:
    ckpt = (
        []
        if not overrides or overrides[0].startswith("ckpt_path")
        else [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}"]
    )
    with pytest.raises(error, match=message):
        evaluate(make_config([*ckpt, *overrides], tmp_path, "eval"))
    assert not (tmp_path / "results.json").exists()


def test_a_checkpoint_outside_a_run_needs_data_and_broken_ones_are_named(
    run: Path, tmp_path: Path
) -> None:
    lone = tmp_path / "lone.ckpt"
    lone.write_bytes((run / "checkpoints" / "last.ckpt").read_bytes())
    with pytest.raises(EvalError, match=r"no data given and no run config at .*config\.yaml: give"):
        evaluate(make_config([f"ckpt_path={lone}"], tmp_path / "out", "eval"))
    lone.write_bytes(lone.read_bytes()[:4000])
    with pytest.raises(CheckpointError, match=r"lone\.ckpt is truncated or damaged"):
        evaluate(make_config([f"ckpt_path={lone}", "data=synthetic"], tmp_path / "out", "eval"))


def classes(names: list[str]) -> SegmentationDataModule:
    return SegmentationDataModule(names, Hierarchy.flat(names))


def test_classes_are_matched_by_name() -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    reordered, order = match_classes(h, classes(["truck", "sky", "car"]))
    assert reordered.leaves == ("truck", "sky", "car") and order.tolist() == [2, 0, 1]
    with pytest.raises(
        EvalError, match=r"the data's classes do not fit the checkpoint's tree: .*bus"
    ):
        match_classes(h, classes(["sky", "car", "bus"]))


def test_a_coarse_data_set_is_labelled_with_the_checkpoint_tree_node_ids() -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    data = classes(["vehicle", "sky"])
    matched, order = match_classes(h, data)
    assert matched.leaves == ("sky", "car", "truck") and order.tolist() == [0, 1, 2]
    assert data.label_ids.tolist() == [matched.label_id("vehicle"), 0]


def command(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a python module as a command in cwd, on one torch thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_hl_eval_on_a_checkpoint_hl_train_trained(tmp_path: Path, tiny_run: list[str]) -> None:
    # independent commands side by side: --help beside the training, the two hl-eval after it
    with ThreadPoolExecutor(max_workers=2) as pool:
        helping = pool.submit(command, ["hl_lightning.cli.evaluate", "--help"], tmp_path)
        trained = command(
            ["hl_lightning.cli.train", *tiny_run, "loss=flat", "hydra.run.dir=run"], tmp_path
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        out = tmp_path / "eval"
        args = ["ckpt_path=run/checkpoints/last.ckpt", "decode=[marginal,crm]", "temperature=fit"]
        evaluating = pool.submit(
            command, ["hl_lightning.cli.evaluate", *args, f"hydra.run.dir={out}"], tmp_path
        )
        cut = (tmp_path / "run/checkpoints/last.ckpt").read_bytes()[:999]
        (tmp_path / "cut.ckpt").write_bytes(cut)
        broken = command(["hl_lightning.cli.evaluate", "ckpt_path=cut.ckpt"], tmp_path)
        result, helped = evaluating.result(), helping.result()
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("marginal ") for line in lines)
    assert any(line.startswith("crm ") for line in lines)
    assert any(line.startswith("node predictions at 0.5, logits / T = ") for line in lines)
    for name in ("results.json", "decodings.csv", "hpr_curve.csv"):
        assert (out / name).is_file(), name
    assert (tmp_path / "run" / "csv" / "hpr_curve.csv").is_file()  # hl-train's test curve
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines() == [
        "hl-eval: error: the checkpoint cut.ckpt is truncated or damaged (a torch file cut "
        "short, as a kill or a full disk while it is written leaves it)"
    ]
    assert helped.returncode == 0 and helped.stdout.startswith("hl-eval: evaluate a checkpoint")
    assert "ckpt_path=PATH" in helped.stdout and "decode=[marginal,crm]" in helped.stdout
