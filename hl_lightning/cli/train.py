"""hl-train: the Hydra app that trains a HierarchicalSegmenter (``python -m hl_lightning.train``).

Compose the config from ``conf/`` groups, instantiate data, hierarchy, model, loggers,
callbacks and trainer, fit, test with the best checkpoint, and return the final metrics.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from hl_lightning.cli._quiet import quiet_third_party
from hl_lightning.cli._version import version_text
from hl_lightning.cli.resume import (
    ResumeError,
    check_checkpoint_fits,
    resume_config,
    resume_run_dir,
    second_output_subdir,
)
from hl_lightning.cli.sweep_dirname import sweep_argv, sweep_dirname
from hl_lightning.data.io import BadDataError
from hl_lightning.hierarchies import load_hierarchy
from hl_lightning.hierarchy import HierarchyError
from hl_lightning.lightning.module import MissingBackboneError, NonFiniteLossError

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config value that cannot be used; the message names its key."""


#: Problems of the user's input that end a run with their message alone (no traceback).
_USER_ERRORS = (
    BadDataError,
    ConfigError,
    HierarchyError,
    MissingBackboneError,
    NonFiniteLossError,
    ResumeError,
)


def _sweep_dirname(overrides: Any, params: Any, sweep_dir: Any) -> str:
    """The ``hl_sweep_dirname`` resolver of ``hydra.sweep.subdir`` (conf/train.yaml)."""
    plain = OmegaConf.to_container(params) if isinstance(params, DictConfig) else params
    swept = plain if isinstance(plain, dict) else None
    return sweep_dirname([str(o) for o in overrides], swept, sweep_argv(sweep_dir))


OmegaConf.register_new_resolver("hl_sweep_dirname", _sweep_dirname, replace=True)
OmegaConf.register_new_resolver("hl_run_dir", resume_run_dir, replace=True)
OmegaConf.register_new_resolver("hl_output_subdir", second_output_subdir, replace=True)


#: The module each of Lightning's loggers imports, and the extra of hl_lightning that installs it.
LOGGER_PACKAGES: dict[str, tuple[tuple[str, ...], str]] = {
    "TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard"),
    "WandbLogger": (("wandb",), "wandb"),
    "MLFlowLogger": (("mlflow",), "mlflow"),
}


def make_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Return the configured loggers.

    A logger whose package is missing stops the run with one line naming the extra to install
    (a :class:`ConfigError`), except TensorBoard beside other loggers (``logger=default``):
    that one is skipped with a warning. A W&B run left open by an earlier run in this
    process (a sweep's previous job) is finished first, so that each run logs to its own,
    and the W&B run starts here: a missing login is an error before training.
    MLflow may write to a local file store (``file:`` URI), which MLflow 3 refuses by default.
    """
    specs = {name: spec for name, spec in (cfg or {}).items() if spec is not None}
    loggers = []
    for name, spec in specs.items():
        kind = str(spec.get("_target_", "")).rsplit(".", 1)[-1]
        need = [value for logger, value in LOGGER_PACKAGES.items() if kind.endswith(logger)]
        modules, extra = need[0] if need else ((), "")
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            install = f'pip install "hl_lightning[{extra}]"'
            hint = f"logger.{name!s} needs the {modules[0]} package: {install}"
            if kind == "TensorBoardLogger" and len(specs) > 1:
                log.warning("%s (skipped)", hint)
                continue
            raise ConfigError(hint)
        if kind.endswith("MLFlowLogger"):
            _allow_mlflow_file_store(spec.get("tracking_uri"))
        loggers.append(instantiate(spec))
        if isinstance(loggers[-1], WandbLogger):
            _start_wandb_run(loggers[-1], str(name))
    return loggers


def _start_wandb_run(logger: WandbLogger, name: str) -> None:
    """Start the logger's W&B run now (rank 0), so that a missing login is a one-line error
    at set-up; first finish the run that an earlier run in this process left open."""
    import wandb

    if wandb.run is not None:
        log.info("finishing the W&B run %s of the previous run in this process", wandb.run.id)
        wandb.finish()
    try:
        _ = logger.experiment
    except wandb.errors.UsageError as error:
        raise ConfigError(
            f"logger.{name}: {error} Or log offline: logger.{name}.offline=true"
        ) from None


def _allow_mlflow_file_store(uri: str | None) -> None:
    """Let MLflow (3.x: refused unless ``MLFLOW_ALLOW_FILE_STORE``) write to a file store.

    The file store is what ``logger=mlflow`` writes by default (``file:./mlruns``): the
    ``[mlflow]`` extra (mlflow-skinny) has no database store, and a file store needs no server.
    """
    if uri is not None and urlparse(str(uri)).scheme in ("", "file"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")


def make_callbacks(cfg: DictConfig | None, interactive: bool) -> list[Callback]:
    """Return the configured callbacks, plus a Rich progress bar on a terminal."""
    callbacks = [instantiate(spec) for spec in (cfg or {}).values() if spec is not None]
    if interactive:
        callbacks.append(RichProgressBar())
    return callbacks


def build_model(cfg: DictConfig, datamodule: Any) -> L.LightningModule:
    """Return the configured model (``cfg.model`` around ``cfg.backbone``) for
    ``datamodule``'s classes and ``cfg.hierarchy``."""
    hierarchy = load_hierarchy(
        cfg.hierarchy.source, datamodule.class_names, cfg.hierarchy.get("level_names")
    )
    log.info("hierarchy %r", hierarchy)
    try:
        return instantiate(
            cfg.model,
            backbone=cfg.backbone,
            hierarchy=hierarchy.to_config(),
            loss=cfg.loss.name,
            level_weights=cfg.loss.get("level_weights"),
            loss_options={k: v for k, v in cfg.loss.items() if k not in ("name", "level_weights")},
            ignore_index=datamodule.ignore_index,
        )
    except InstantiationException as error:  # a bad loss option: name its config key
        cause, text = error.__cause__, str(error.__cause__)
        keys = [k for k in cfg.loss if k != "name" and (k in text or k.replace("_", " ") in text)]
        if isinstance(cause, ValueError) and keys:
            raise ConfigError(f"config key loss.{keys[0]}: {cause}") from cause
        raise


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and test) as ``cfg`` says; return the final logged metrics as floats."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = build_model(cfg, datamodule)
    interactive = sys.stdout.isatty()
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        logger=make_loggers(cfg.get("logger")),
        callbacks=make_callbacks(cfg.get("callbacks"), interactive),
        enable_progress_bar=interactive,
    )
    if cfg.fit:
        ckpt_path = cfg.get("ckpt_path")
        found = _checkpoint_file(trainer, ckpt_path)
        if found is not None:  # another model's checkpoint: the differing keys, up front
            check_checkpoint_fits(found, model.hparams, str(found.parents[1]))
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if cfg.test:
        if cfg.fit:  # the best checkpoint of this fit, else the weights as trained
            checkpoint = trainer.checkpoint_callback  # the first ModelCheckpoint: by val/miou
            best = isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path
            ckpt_path = best or None  # its path: "best" warns when several callbacks save
        else:  # test only: the given checkpoint (else the untrained model)
            ckpt_path = cfg.get("ckpt_path")
        # the per-level table of the LevelSummary callback replaces Lightning's own
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


def _checkpoint_file(trainer: L.Trainer, ckpt_path: str | None) -> Path | None:
    """Return the checkpoint file ``ckpt_path`` names (``last``: the newest ``last.ckpt`` of
    the checkpoint callbacks' folders), or None where there is none yet."""
    if ckpt_path is None:
        return None
    if ckpt_path != "last":
        return Path(ckpt_path) if Path(ckpt_path).is_file() else None
    folders = [c.dirpath for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    found = [Path(f) / "last.ckpt" for f in folders if f and (Path(f) / "last.ckpt").is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def optimized_value(metrics: dict[str, float], name: str | None) -> float | None:
    """Return the metric ``name`` (``optimized_metric``) for a sweeper; None without a name.

    Example:
        >>> optimized_value({"val/miou": 0.5}, "val/miou"), optimized_value({}, None)
        (0.5, None)
    """
    if not name:
        return None
    if name not in metrics:
        logged = ", ".join(sorted(k for k in metrics if k.count("/") == 1))
        raise ConfigError(
            f"optimized_metric {name!r} was not logged; the run logged {logged} "
            "(and per level: <key>/<level name>)"
        )
    return metrics[name]


def main() -> Any:
    """Run ``hl-train``: ``--version`` prints the versions, anything else runs :func:`run`."""
    if "--version" in sys.argv[1:]:
        print(version_text("hl-train"))
        return None
    return run()


@hydra.main(version_base="1.3", config_path="pkg://hl_lightning.conf", config_name="train")
def run(cfg: DictConfig) -> Any:
    """Run ``hl-train`` (Hydra: ``hl-train key=value ...``, ``-m`` for sweeps, ``--help``).

    Returns the ``optimized_metric`` (a sweeper's objective; an error if it was not logged).

    A known problem (a bad hierarchy or data file, a checkpoint of another model, a
    non-finite loss, ...) ends the run with its message on stderr and exit status 1.
    """
    quiet_third_party()
    hydra_cfg = HydraConfig.get()
    out = hydra_cfg.runtime.output_dir
    log.info("run directory: %s", out)
    log.info("overrides: %s", " ".join(hydra_cfg.overrides.task) or "(none)")
    log.info("the resolved config: %s/%s/config.yaml", out, hydra_cfg.output_subdir)
    try:
        if cfg.get("resume"):
            cfg = resume_config(cfg.resume, list(hydra_cfg.overrides.task))
            log.info("resuming %s from %s (its saved config)", cfg.paths.output_dir, cfg.ckpt_path)
        return optimized_value(train(cfg), cfg.get("optimized_metric"))
    except _USER_ERRORS as error:
        log.error("%s: %s", type(error).__name__, error)
        print(f"hl-train: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
