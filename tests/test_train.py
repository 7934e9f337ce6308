"""Tests for hl_lightning/train.py and hl_lightning/conf/: the hl-train Hydra app.

Configs are composed in-process with Hydra's compose API and trained with ``train(cfg)``;
the console script runs as a subprocess (a single run, a bad override, a 2-job sweep).
The built wheel is installed and run elsewhere in tests/test_packaging.py.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml
from _compose import make_config
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from hl_lightning.cli.build import ConfigError, build_model, check_config
from hl_lightning.cli.loggers import make_loggers
from hl_lightning.cli.train import optimized_value, train
from hl_lightning.data import SYNTHETIC_CLASSES, SYNTHETIC_HARD_CLASSES
from hl_lightning.hierarchy import HierarchyError
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.losses import LOSSES

REPO = Path(__file__).resolve().parents[1]
CONF = resources.files("hl_lightning.conf")
LEVELS = ("kind", "family", "class")
# seconds-long runs: tiny data and network, one epoch, CSV logging only
# the synthetic tree in the indented text format, leaves in another order than the data
TREE_TEXT = """\
things
\tangular
\t\tdiamond
\t\ttriangle
\t\tsquare
\tround
\t\tdisc
\t\tring
\t\tellipse
stuff
\tvegetation
\t\tforest
\t\tshrub
\t\tgrass
\twater
\t\tcalm_water
\t\tchoppy_water
\tsky
background
"""


def tree_file(tmp_path: Path) -> Path:
    path = tmp_path / "tree.txt"
    path.write_text(TREE_TEXT)
    return path


def config_options() -> list[tuple[str, str]]:
    """Return (group, option) for every YAML file of every group shipped in hl_lightning/conf."""
    return sorted(
        (group.name, option.name.removesuffix(".yaml"))
        for group in CONF.iterdir()
        if group.is_dir() and not group.name.startswith("__")
        for option in group.iterdir()
        if option.name.endswith(".yaml")
    )


def read_metrics_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def metrics_columns(path: Path) -> set[str]:
    return set(read_metrics_csv(path)[0])


def per_level_columns(stages: tuple[str, ...] = ("val", "test")) -> set[str]:
    return {
        f"{stage}/{metric}/{level}"
        for stage in stages
        for metric in ("loss", "miou", "acc")
        for level in LEVELS
    }


# ---------------------------------------------------------------------------- composition
def test_every_group_and_option_is_covered() -> None:
    groups = {group for group, _ in config_options()}
    assert groups == {
        "backbone",
        "callbacks",
        "data",
        "debug",
        "experiment",
        "hierarchy",
        "hparams_search",
        "logger",
        "loss",
        "model",
        "trainer",
    }
    assert ("hierarchy", "file") in config_options() and ("trainer", "gpu") in config_options()


# Options that need a real data set on disk (built on fixture folders in tests/test_data_*)
# or a plugin or hardware this machine may lack: here they are composed, not built.
COMPOSE_ONLY = {
    ("data", "folder"),
    ("data", "helen"),
    ("data", "mapillary"),
    ("data", "cityscapes"),
    ("data", "coco_stuff"),
    ("data", "pascal_person_part"),
    ("data", "lip"),
    ("data", "voc"),
    ("data", "multi"),
    ("hierarchy", "helen"),
    ("hierarchy", "mapillary_paper"),
    ("hierarchy", "mapillary_auto"),
    ("hierarchy", "cityscapes"),
    ("hierarchy", "coco_stuff"),
    ("hierarchy", "pascal_person_part"),
    ("hierarchy", "lip"),
    ("hierarchy", "voc"),
    ("experiment", "paper_helen"),
    ("experiment", "paper_vistas"),
    ("experiment", "hssn_cityscapes"),
    ("experiment", "hssn_pascal_person_part"),
    ("experiment", "hssn_lip"),
    ("experiment", "hssn_vistas2"),
    ("trainer", "gpu"),
    ("trainer", "ddp"),
    ("hparams_search", "level_weights_optuna"),
    ("hparams_search", "hxe_alpha_optuna"),
}


@pytest.mark.parametrize(("group", "option"), config_options())
def test_config_option_composes(tmp_path: Path, group: str, option: str) -> None:
    optuna = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper")
    if group == "hparams_search" and optuna is None:
        pytest.skip("hydra-optuna-sweeper is not installed")
    overrides = [f"+{group}={option}" if group == "hparams_search" else f"{group}={option}"]
    if (group, option) == ("hierarchy", "mapillary_auto"):
        overrides += ["data=mapillary", f"data.root={tmp_path}"]
    if (group, option) == ("hierarchy", "file"):
        overrides.append(f"hierarchy.source={tree_file(tmp_path)}")
    if (group, option) == ("hierarchy", "synthetic_hard"):  # the tree of the hard variant
        overrides.append("data=synthetic_hard")
    if (group, option) == ("backbone", "custom"):  # the user's own _target_
        overrides.append("backbone._target_=hl_lightning.models.UNet")
    if (group, option) == ("data", "multi"):  # two data sets, each its own root
        overrides += [f"data.datasets.{name}.root={tmp_path}" for name in ("first", "second")]
    elif (group, option) in COMPOSE_ONLY and group in ("data", "experiment"):
        overrides.append(f"data.root={tmp_path}")
    cfg = make_config(overrides, tmp_path)
    task = {key: cfg[key] for key in cfg if key != "hydra"}
    OmegaConf.to_container(OmegaConf.create(task), resolve=True)  # every interpolation resolves
    for key in ("data", "hierarchy", "model", "loss", "trainer", "logger", "callbacks"):
        assert key in cfg, key
    assert cfg.trainer.default_root_dir == str(tmp_path)
    if group == "debug" or (group == "logger" and option not in ("csv", "default")):
        return  # built and run in tests/test_debug.py and tests/test_train_loggers.py
    if (group, option) in COMPOSE_ONLY:
        if group == "trainer":  # composes; not run without a GPU
            assert cfg.trainer.accelerator == "gpu" and cfg.trainer.precision == "16-mixed"
        if group == "hparams_search":
            assert cfg.hydra.mode.name == "MULTIRUN" and cfg.optimized_metric == "val/miou"
        return
    if group == "experiment" and option == "paired":
        assert cfg.hydra.mode.name == "MULTIRUN"
        assert cfg.hydra.sweeper.params == {"loss": "hierarchical,flat"}
        assert cfg.seed == 0
    if group == "experiment" and option == "evidence":  # 5 losses x 5 seeds, paired
        assert cfg.hydra.mode.name == "MULTIRUN"
        params = cfg.hydra.sweeper.params
        assert len(params.loss.split(",")) == len(params.seed.split(",")) == 5
        assert cfg.data.variant == "hard" and cfg.hierarchy.source == "synthetic_hard"
    if group == "experiment" and option == "quick":
        assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 4
    # the config passes the checks of every key, and the pieces build
    check_config(cfg)
    datamodule = instantiate(cfg.data)
    model = build_model(cfg, datamodule)
    hierarchy = model.hierarchy
    hard = "synthetic_hard" in option or option in ("evidence", "coarse_evidence")
    assert hierarchy.leaves == (SYNTHETIC_HARD_CLASSES if hard else SYNTHETIC_CLASSES)
    expected_levels = {"flat": 1, "synthetic": 3, "synthetic_hard": 3, "file": 3}[
        option if group == "hierarchy" else "synthetic"
    ]
    assert hierarchy.num_levels == expected_levels
    assert isinstance(model, HierarchicalSegmenter)
    assert model.loss_name == (option if group == "loss" else "hierarchical")
    model.check_backbone()  # its channels fit the loss (one per leaf, or per node: tree_min)
    callbacks = [instantiate(spec) for spec in cfg.callbacks.values()]
    assert {"ModelCheckpoint", "LevelSummary"} <= {type(c).__name__ for c in callbacks}
    loggers = make_loggers(cfg.logger)
    assert any(isinstance(logger, CSVLogger) for logger in loggers)
    trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks)
    assert trainer.max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("[1,nan,1]", r"loss.level_weights: level_weights must be finite and >= 0"),
        ("[1,-1,1]", r"loss.level_weights: level_weights must be finite and >= 0"),
        ("[0,0,0]", r"loss.level_weights: level_weights are all 0"),
        ("[1,1]", r"loss.level_weights: 2 level weights given for a hierarchy with 3 levels"),
    ],
)
def test_bad_level_weights_name_their_config_key(weights: str, message: str) -> None:
    cfg = make_config([f"loss.level_weights={weights}", "data.num_train=2"], Path("out"))
    with pytest.raises(ConfigError, match=message):
        build_model(cfg, instantiate(cfg.data))


def test_optimized_metric_is_returned_or_named_as_not_logged() -> None:
    metrics = {"val/miou": 0.25, "val/loss": 1.5, "val/miou/kind": 0.5}
    assert optimized_value(metrics, "val/miou") == 0.25
    assert optimized_value(metrics, "val/miou/kind") == 0.5
    assert optimized_value(metrics, None) is None
    with pytest.raises(
        ConfigError,
        match=r"optimized_metric: 'val/mIoU' was not logged; the run "
        r"logged val/loss, val/miou \(and per level",
    ):
        optimized_value(metrics, "val/mIoU")


def test_missing_hierarchy_source_is_reported() -> None:
    cfg = make_config(["hierarchy=file"], Path("out"))
    assert OmegaConf.is_missing(cfg.hierarchy, "source")


# ---------------------------------------------------------------------------- train(cfg)
def test_train_quick_in_process(tmp_path: Path, tiny_run: list[str]) -> None:
    metrics = train(make_config(tiny_run, tmp_path))
    assert per_level_columns() <= metrics.keys()
    assert {"test/miou", "test/severity", "test/serious", "val/miou"} <= metrics.keys()
    assert all(isinstance(v, float) for v in metrics.values())
    assert per_level_columns() <= metrics_columns(tmp_path / "csv" / "metrics.csv")
    last = tmp_path / "checkpoints" / "last.ckpt"
    model = HierarchicalSegmenter.load_from_checkpoint(last)  # config-built: no arguments
    assert model.hierarchy.level_names == LEVELS
    assert model.hierarchy.leaves == SYNTHETIC_CLASSES

    # fit=false tests the given checkpoint: the same weights as the test above (best == last)
    again = train(make_config([*tiny_run, "fit=false", f"ckpt_path={last}"], tmp_path / "again"))
    assert again["test/miou"] == metrics["test/miou"]
    assert again["test/loss"] == metrics["test/loss"]


def documented_keys(stages: tuple[str, ...], levels: tuple[str, ...]) -> set[str]:
    """Return the metric keys of the README's table of logged keys, placeholders expanded."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("| key | what |") :].split("\n\n")[0]
    keys: set[str] = set()
    for row in table.splitlines()[2:]:
        for pattern in row.split("|")[1].replace("`", "").split(","):
            for stage in stages if "<stage>" in pattern else ("",):
                for level in levels if "<level>" in pattern else ("",):
                    key = pattern.strip().replace("<stage>", stage).replace("<level>", level)
                    keys.add(key)
    return keys


def test_the_readme_table_of_logged_keys_is_what_a_run_logs(
    tmp_path: Path, tiny_run: list[str]
) -> None:
    train(make_config(tiny_run, tmp_path))
    logged = metrics_columns(tmp_path / "csv" / "metrics.csv") - {"epoch", "step"}
    assert documented_keys(("train", "val", "test"), LEVELS) == logged


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_train_on_the_synthetic_coarse_mode(tmp_path: Path, tiny_run: list[str], loss: str) -> None:
    """Half the training images labelled at the family level only: every loss trains, every
    level is measured (validation and test stay fine)."""
    cfg = make_config([*tiny_run, "data.coarse_fraction=0.5", f"loss={loss}"], tmp_path)
    assert cfg.data.coarse_fraction == 0.5 and cfg.data.coarse_level == 1
    metrics = train(cfg)
    assert math.isfinite(metrics["train/loss_epoch"])
    for level in LEVELS:
        assert 0.0 <= metrics[f"test/miou/{level}"] <= 1.0
        assert math.isfinite(metrics[f"train/loss/{level}"])


@pytest.mark.parametrize(
    ("overrides", "levels"),
    [
        (["loss=flat"], LEVELS),
        (["hierarchy=flat"], ("level0",)),
        (["hierarchy=file", "hierarchy.source={tree}"], ("level0", "level1", "level2")),
        (["hierarchy=file", "hierarchy.source={tree}", "hierarchy.level_names=[a,b,c]"], "abc"),
        (["loss.level_weights=[1,0.5,0.25]"], LEVELS),
    ],
    ids=["loss-flat", "hierarchy-flat", "hierarchy-file", "file-level-names", "level-weights"],
)
def test_train_overrides(
    tmp_path: Path, overrides: list[str], levels: tuple[str, ...], tiny_run: list[str]
) -> None:
    overrides = [o.format(tree=tree_file(tmp_path)) for o in overrides]
    metrics = train(make_config([*tiny_run, *overrides], tmp_path))
    columns = metrics_columns(tmp_path / "csv" / "metrics.csv")
    for level in levels:
        assert {f"val/loss/{level}", f"test/miou/{level}", f"test/acc/{level}"} <= columns
    model = HierarchicalSegmenter.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert model.hierarchy.level_names == tuple(levels)
    assert model.hierarchy.leaves == SYNTHETIC_CLASSES  # the file's leaf order is reordered
    finest = f"test/loss/{levels[-1]}"
    if overrides == ["loss=flat"]:
        assert model.loss_name == "flat"
        assert metrics["test/loss"] == pytest.approx(metrics[finest], rel=1e-5)
    elif overrides[0].startswith("loss.level_weights"):
        weights = dict(zip(LEVELS, [1.0, 0.5, 0.25], strict=True))
        assert model.hierarchical_loss.level_weights.tolist() == list(weights.values())
        weighted = sum(w * metrics[f"test/loss/{level}"] for level, w in weights.items())
        assert metrics["test/loss"] == pytest.approx(weighted, rel=1e-5)
    else:  # the hierarchical loss: the sum of the level losses
        total = sum(metrics[f"test/loss/{level}"] for level in levels)
        assert metrics["test/loss"] == pytest.approx(total, rel=1e-5)


def test_unknown_hierarchy_file_raises_in_process(tmp_path: Path, tiny_run: list[str]) -> None:
    cfg = make_config([*tiny_run, "hierarchy=file", "hierarchy.source=missing.txt"], tmp_path)
    with pytest.raises(HierarchyError, match=r"no hierarchy 'missing\.txt'"):
        train(cfg)


def test_same_seed_deterministic_runs_give_identical_metrics(
    tmp_path: Path, tiny_run: list[str]
) -> None:
    overrides = [*tiny_run, "trainer.deterministic=true", "seed=3"]
    first = train(make_config(overrides, tmp_path / "a"))
    second = train(make_config(overrides, tmp_path / "b"))
    assert first == second
    other = train(make_config([*overrides, "seed=4"], tmp_path / "c"))
    assert other["test/loss"] != first["test/loss"]


# ---------------------------------------------------------------------------- console script


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command in cwd, on one torch thread (tiny tensors), and return its result."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(
        args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_console_script_quick_run(tmp_path: Path, tiny_run: list[str], hl_train: str) -> None:
    out = tmp_path / "run"
    result = run([hl_train, *tiny_run, f"hydra.run.dir={out}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    stdout = result.stdout.splitlines()
    assert any(line.startswith("epoch 0 train/loss=") and "val/miou=" in line for line in stdout)
    for stage in ("val", "test"):
        start = stdout.index(f"{stage} per level:")
        assert [line.split()[0] for line in stdout[start + 2 : start + 5]] == list(LEVELS)
    config = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
    assert config["loss"]["name"] == "hierarchical"
    hydra_config = yaml.safe_load((out / ".hydra" / "hydra.yaml").read_text())
    assert hydra_config["hydra"]["runtime"]["output_dir"] == str(out)
    rows = read_metrics_csv(out / "csv" / "metrics.csv")
    assert per_level_columns() <= set(rows[0])
    assert any(row["val/miou/kind"] for row in rows) and any(row["test/acc/class"] for row in rows)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing else in the cwd
    console = result.stdout + result.stderr  # quiet: the run, not the config or tips
    assert f"run directory: {out}" in console and "overrides: experiment=quick" in console
    assert "task_name:" not in console  # the resolved config is in .hydra/config.yaml
    assert "Tip:" not in console and "LeafSpec" not in console
    assert "Test metric" not in console  # Lightning's table: the per-level table replaces it


@pytest.mark.slow
def test_help_lists_the_groups_presets_and_common_runs(hl_train: str, tmp_path: Path) -> None:
    result = run([hl_train, "--help"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("hl-train: train a segmentation network")
    assert "backbone: custom, hf, smp, timm, torchvision, unet, unet_paper" in result.stdout
    assert "loss: flat, hierarchical, hxe, soft_labels, tree_min" in result.stdout
    assert "hl-train -m loss=hierarchical,flat" in result.stdout


@pytest.mark.slow
def test_console_script_flat_loss_and_flat_hierarchy(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    out = tmp_path / "run"
    args = [hl_train, *tiny_run, "loss=flat", "hierarchy=flat", f"hydra.run.dir={out}"]
    result = run(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "level0" in result.stdout
    columns = metrics_columns(out / "csv" / "metrics.csv")
    assert {"val/loss/level0", "test/miou/level0"} <= columns
    assert not any(column.endswith("/kind") for column in columns)
    config = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
    assert config["loss"]["name"] == "flat" and config["hierarchy"]["source"] == "flat"


@pytest.mark.slow
def test_console_script_hierarchy_file_relative_to_the_launch_directory(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    tree_file(tmp_path)  # tmp_path/tree.txt; Hydra must not change the working directory
    out = tmp_path / "run"
    args = [hl_train, *tiny_run, "hierarchy=file", "hierarchy.source=tree.txt"]
    result = run(
        [*args, "hierarchy.level_names=[coarse,middle,fine]", f"hydra.run.dir={out}"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    columns = metrics_columns(out / "csv" / "metrics.csv")
    assert {f"test/miou/{level}" for level in ("coarse", "middle", "fine")} <= columns
    model = HierarchicalSegmenter.load_from_checkpoint(out / "checkpoints" / "last.ckpt")
    assert model.hierarchy.leaves == SYNTHETIC_CLASSES
    assert model.hierarchy.group_names(0) == ("things", "stuff", "background")  # the file's tree


@pytest.mark.slow
def test_console_script_bad_hierarchy_file_fails_clearly(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    args = [hl_train, *tiny_run, "hierarchy=file", "hierarchy.source=no/such/tree.txt"]
    result = run([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert result.returncode != 0
    assert "no hierarchy 'no/such/tree.txt'" in result.stderr
    assert "no such file" in result.stderr


RECORDER = '''
"""Record what a training run sees: initial weights, every training batch, final weights."""
import hashlib
import json
from pathlib import Path

import lightning as L


def digest(*tensors):
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Recorder(L.Callback):
    def __init__(self):
        self.record = {"batches": []}

    def on_train_start(self, trainer, pl_module):
        self.record["initial"] = digest(*pl_module.state_dict().values())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.record["batches"].append(digest(*batch))

    def on_train_end(self, trainer, pl_module):
        self.record["final"] = digest(*pl_module.state_dict().values())
        path = Path(trainer.default_root_dir) / "record.json"
        path.write_text(json.dumps(self.record))
'''


@pytest.mark.slow
def test_multirun_pairs_runs_on_identical_data_and_weights(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    (tmp_path / "recorder.py").write_text(RECORDER)
    sweep = tmp_path / "sweep"
    args = [hl_train, "-m", *tiny_run, "loss=hierarchical,flat", f"hydra.sweep.dir={sweep}"]
    args.append("+callbacks.recorder._target_=recorder.Recorder")
    result = run(args, tmp_path, PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_loss=hierarchical", "1_loss=flat"]
    assert (sweep / "multirun.yaml").is_file()
    records = []
    for job, loss in zip(jobs, ("hierarchical", "flat"), strict=True):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert config["loss"]["name"] == loss
        assert (job / "checkpoints" / "last.ckpt").is_file()
        records.append(json.loads((job / "record.json").read_text()))
    hierarchical, flat = records
    assert len(hierarchical["batches"]) == 2  # one epoch of 16 images in batches of 8
    assert hierarchical["batches"] == flat["batches"]  # the same images, in the same order
    assert hierarchical["initial"] == flat["initial"]  # from the same initial weights
    assert hierarchical["final"] != flat["final"]  # ... trained by different losses


@pytest.mark.slow
def test_ddp_ranks_share_the_run_directory(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    """Lightning re-launches hl-train for rank 1: it must reuse rank 0's run directory."""
    out = tmp_path / "run"
    args = [hl_train, *tiny_run, "+trainer.strategy=ddp", "trainer.devices=2"]
    result = run([*args, f"hydra.run.dir={out}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in result.stderr
    assert (out / "train_ddp_process_1.log").is_file()  # rank 1 ran in the same directory
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert per_level_columns() <= metrics_columns(out / "csv" / "metrics.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert result.stdout.count("test per level:") == 1  # printed by rank 0 only
    output = result.stdout + result.stderr
    assert "sync_dist" not in output  # the logged values are global: no warning
    assert "/None/" not in output  # rank 1 names no config file it has not written
