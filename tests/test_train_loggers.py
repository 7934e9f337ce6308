"""Tests for the logger presets (hl_lightning/conf/logger/) and ``make_loggers`` of
hl_lightning/cli/train.py: each preset trains a real short run offline (W&B in offline
mode, MLflow into a local file store), and its files are read back."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _compose import make_config
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from hl_lightning.cli import loggers as loggers_module
from hl_lightning.cli.config_check import ConfigError
from hl_lightning.cli.loggers import make_loggers
from hl_lightning.cli.train import train

FINAL_KEYS = ("val/miou", "val/loss", "test/miou", "test/loss")
CSV = "ResumableCSVLogger"
MLFLOW = "FileStoreMLFlowLogger"


@pytest.fixture
def quick(tiny_run: list[str]) -> list[str]:
    """The seconds-long run of ``tiny_run`` without its logger choice, and two tags."""
    return [o for o in tiny_run if not o.startswith("logger=")] + ["tags=[smoke,ci]"]


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep W&B offline, quiet and inside tmp_path; finish its run afterwards."""
    wandb = pytest.importorskip(
        "wandb", reason='needs the [wandb] extra: pip install "hl_lightning[wandb]"'
    )
    for variable, folder in (("CONFIG", "config"), ("CACHE", "cache"), ("DATA", "data")):
        monkeypatch.setenv(f"WANDB_{variable}_DIR", str(tmp_path / "wandb_home" / folder))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    yield
    wandb.finish()


# ---------------------------------------------------------------------------- composition
@pytest.mark.parametrize(
    ("choice", "kinds"),
    [
        ("default", {CSV, "TensorBoardLogger"}),
        ("csv", {CSV}),
        ("tensorboard", {"TensorBoardLogger"}),
        ("wandb", {"WandbLogger"}),
        ("mlflow", {MLFLOW}),
        ("many", {CSV, "TensorBoardLogger", "WandbLogger", MLFLOW}),
        ("[csv,wandb]", {CSV, "WandbLogger"}),
    ],
)
def test_logger_presets_compose(tmp_path: Path, choice: str, kinds: set[str]) -> None:
    cfg = make_config([f"logger={choice}"], tmp_path)
    assert {spec._target_.rsplit(".", 1)[-1] for spec in cfg.logger.values()} == kinds
    for spec in cfg.logger.values():  # every run's files in its own run directory or store
        assert str(spec.get("save_dir", tmp_path)) == str(tmp_path)


def test_mlflow_preset_follows_the_tracking_uri_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_config(["logger=mlflow"], tmp_path).logger.mlflow.tracking_uri == "file:./mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://localhost:5000")
    cfg = make_config(["logger=mlflow"], tmp_path)
    assert cfg.logger.mlflow.tracking_uri == "http://localhost:5000"


def test_tags_are_a_config_key_saved_with_the_run(tmp_path: Path) -> None:
    assert list(make_config([], tmp_path).tags) == []
    cfg = make_config(["tags=[baseline,v2]", "logger=wandb"], tmp_path)
    assert list(cfg.tags) == ["baseline", "v2"]
    assert list(cfg.logger.wandb.tags) == ["baseline", "v2"]  # W&B's own run tags
    assert list(cfg.callbacks.run_tags.tags) == ["baseline", "v2"]  # every logger's hparams


# ---------------------------------------------------------------------------- missing packages
def hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``make_loggers`` find none of ``modules`` installed."""
    find_spec = loggers_module.importlib.util.find_spec

    def without(name: str, *args: Any) -> Any:
        return None if name in modules else find_spec(name, *args)

    monkeypatch.setattr(loggers_module.importlib.util, "find_spec", without)


@pytest.mark.parametrize(
    ("choice", "hidden", "extra"),
    [
        ("wandb", ("wandb",), "wandb"),
        ("mlflow", ("mlflow",), "mlflow"),
        ("tensorboard", ("tensorboard", "tensorboardX"), "tensorboard"),
        ("many", ("wandb",), "wandb"),
    ],
)
def test_a_missing_logger_package_names_the_extra_to_install(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    choice: str,
    hidden: tuple[str, ...],
    extra: str,
) -> None:
    hide(monkeypatch, *hidden)
    cfg = make_config([f"logger={choice}"], tmp_path)
    with pytest.raises(ConfigError) as info:
        make_loggers(cfg.logger)
    line = (
        f'config key logger.{extra}: needs the {extra} package: pip install "hl_lightning[{extra}]"'
    )
    assert str(info.value) == line


def test_wandb_without_a_login_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wandb = pytest.importorskip("wandb", reason="needs the [wandb] extra")

    def no_login(self: object) -> None:
        raise wandb.errors.UsageError("No API key configured. Use `wandb login` to log in.")

    monkeypatch.setattr(WandbLogger, "experiment", property(no_login))
    with pytest.raises(ConfigError) as info:
        make_loggers(make_config(["logger=wandb"], tmp_path).logger)
    assert str(info.value) == (
        "config key logger.wandb: No API key configured. Use `wandb login` to log in. "
        "Or log offline: logger.wandb.offline=true"
    )


def test_default_preset_without_tensorboard_logs_csv_and_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hide(monkeypatch, "tensorboard", "tensorboardX")
    loggers = make_loggers(make_config([], tmp_path).logger)
    assert len(loggers) == 1 and isinstance(loggers[0], CSVLogger)
    assert 'pip install "hl_lightning[tensorboard]" (skipped)' in caplog.text


# ---------------------------------------------------------------------------- real runs
def check_final_metrics(metrics: dict[str, float], logged: dict[str, float]) -> None:
    """The last value each logger recorded is what the run returned."""
    for key in FINAL_KEYS:
        assert logged[key] == pytest.approx(metrics[key], rel=1e-6), key


def tensorboard_scalars(folder: Path) -> dict[str, float]:
    """Return the last value of every scalar in the TensorBoard event files under folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list(folder.glob("events.out.tfevents.*"))  # one file for fit, one for test
    accumulator = EventAccumulator(str(folder))  # reads them in order
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag)[-1].value for tag in accumulator.Tags()["scalars"]}


def test_tensorboard_preset_writes_event_files(tmp_path: Path, quick: list[str]) -> None:
    pytest.importorskip("tensorboard", reason="needs the [tensorboard] extra")
    metrics = train(make_config([*quick, "logger=tensorboard"], tmp_path))
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    check_final_metrics(metrics, scalars)
    assert {"val/miou/kind", "test/acc/class", "train/loss_step"} <= scalars.keys()
    hparams = yaml.safe_load((tmp_path / "tensorboard" / "hparams.yaml").read_text())
    assert hparams["tags"] == ["smoke", "ci"] and hparams["loss"] == "hierarchical"
    assert not (tmp_path / "csv").exists()


def wandb_records(path: Path) -> Iterator[Any]:
    """Yield the protobuf records of a W&B run file (``run-<id>.wandb``).

    The file is a 7-byte header (``:W&B``, magic, version) and then LevelDB's log format:
    32 KiB blocks of chunks, each a 7-byte header (CRC, little-endian length, type: 1 full,
    2 first, 3 middle, 4 last) and its data; a block's last < 7 bytes are padding.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, parts = 7, 32768, b""
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if position + 7 + length > len(data):
            break  # a chunk still being written
        parts += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            yield record
            parts = b""


def finished_run_records(path: Path) -> list[Any]:
    """Return the records of a W&B run file once its last one (``exit``) is written: W&B's
    service process writes the file and may still be at it when ``wandb.finish`` returns."""
    deadline = time.monotonic() + 60
    while True:
        records = list(wandb_records(path))
        if any(record.WhichOneof("record_type") == "exit" for record in records):
            return records
        assert time.monotonic() < deadline, f"{path} has no exit record after 60 s"
        time.sleep(0.2)


@pytest.mark.slow
def test_wandb_preset_offline_writes_its_run_file(
    tmp_path: Path, quick: list[str], offline_wandb: None
) -> None:
    import wandb

    metrics = train(make_config([*quick, "logger=wandb", "logger.wandb.offline=true"], tmp_path))
    wandb.finish()  # what the end of the process does: flush the run file
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    history: dict[str, str] = {}
    config: dict[str, Any] = {}
    tags: list[str] = []
    for record in finished_run_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = record.history.item
            history.update(
                {item.key or "/".join(item.nested_key): item.value_json for item in items}
            )
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "run":
            tags = list(record.run.tags)
    check_final_metrics(metrics, {key: json.loads(value) for key, value in history.items()})
    assert {"val/miou/kind", "test/acc/class"} <= history.keys()
    assert tags == ["smoke", "ci"]  # W&B's run tags
    assert config["tags"] == ["smoke", "ci"]  # and among the hyper-parameters
    assert config["loss"] == "hierarchical"  # the module's hyper-parameters


@pytest.mark.slow
def test_mlflow_preset_writes_a_local_file_store(tmp_path: Path, quick: list[str]) -> None:
    pytest.importorskip("mlflow", reason="needs the [mlflow] extra")
    from mlflow.tracking import MlflowClient

    uri = f"file:{tmp_path / 'mlruns'}"
    overrides = [*quick, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}"]
    metrics = train(make_config(overrides, tmp_path / "run"))
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    (run,) = client.search_runs([experiment.experiment_id])
    check_final_metrics(metrics, run.data.metrics)
    assert {"val/miou.kind", "test/acc.class"} <= run.data.metrics.keys()  # beside val/miou
    assert run.data.params["tags"] == "['smoke', 'ci']"
    assert run.data.params["loss"] == "hierarchical"
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert len(history) == 1  # one epoch, one validation


@pytest.mark.slow
def test_many_preset_writes_every_loggers_files(
    tmp_path: Path, quick: list[str], offline_wandb: None
) -> None:
    pytest.importorskip("mlflow", reason="needs the [mlflow] extra")
    pytest.importorskip("tensorboard", reason="needs the [tensorboard] extra")
    import wandb

    uri = f"file:{tmp_path / 'mlruns'}"
    overrides = [*quick, "logger=many", f"logger.mlflow.tracking_uri={uri}"]
    metrics = train(make_config([*overrides, "logger.wandb.offline=true"], tmp_path))
    wandb.finish()
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    check_final_metrics(metrics, tensorboard_scalars(tmp_path / "tensorboard"))
    (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    assert "test/miou" in str(finished_run_records(run_file))
    assert len(list((tmp_path / "mlruns").glob("*/*/metrics/test/miou.class"))) == 1


@pytest.mark.slow
def test_each_run_in_one_process_gets_its_own_wandb_run(
    tmp_path: Path, quick: list[str], offline_wandb: None
) -> None:
    """As the jobs of a sweep in one process (Hydra's basic launcher): the first job's W&B
    run is finished when the second one's logger starts, not logged into again."""
    overrides = [*quick, "logger=wandb", "logger.wandb.offline=true"]
    first = train(make_config([*overrides, "seed=1"], tmp_path / "first"))
    second = train(make_config([*overrides, "seed=2"], tmp_path / "second"))
    import wandb

    wandb.finish()
    for folder, metrics in ((tmp_path / "first", first), (tmp_path / "second", second)):
        (run_file,) = (folder / "wandb").glob("offline-run-*/run-*.wandb")
        history: dict[str, float] = {}
        for record in finished_run_records(run_file):
            if record.WhichOneof("record_type") == "history":
                for item in record.history.item:
                    history[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        check_final_metrics(metrics, history)
    assert first["test/loss"] != second["test/loss"]
