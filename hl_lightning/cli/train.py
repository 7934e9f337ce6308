"""hl-train: the Hydra app that trains a HierarchicalSegmenter (``python -m hl_lightning.train``).

Compose the config from ``conf/`` groups, instantiate data, hierarchy, model, loggers,
callbacks and trainer, fit, test with the best checkpoint, and return the final metrics.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from hl_lightning.atomic import DiskFullError
from hl_lightning.cli._quiet import quiet_third_party
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
    DiskFullError,
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


def make_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Return the configured loggers; TensorBoard only when its package is installed."""
    loggers = []
    for name, spec in (cfg or {}).items():
        if "TensorBoard" in spec.get("_target_", "") and not _tensorboard_installed():
            log.info("logger %s skipped: the tensorboard package is not installed", name)
            continue
        loggers.append(instantiate(spec))
    return loggers


def _tensorboard_installed() -> bool:
    return any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX"))


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


@hydra.main(version_base="1.3", config_path="pkg://hl_lightning.conf", config_name="train")
def main(cfg: DictConfig) -> Any:
    """Run ``hl-train`` (Hydra: ``hl-train key=value ...``, ``-m`` for sweeps, ``--help``).

    A known problem (a bad hierarchy or data file, a checkpoint of another model, a
    non-finite loss, a full disk, ...) ends the run with its message on stderr and exit
    status 1. SIGTERM ends it, once ``last.ckpt`` is saved, with status 143 (128 + 15).
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
        metrics = train(cfg)
    except _USER_ERRORS as error:
        log.error("%s: %s", type(error).__name__, error)
        print(f"hl-train: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except SIGTERMException:  # Lightning's stop (exit status 0); CheckpointOnSigterm saved
        resume = f"hl-train resume={cfg.paths.output_dir}"
        print(f"hl-train: stopped by SIGTERM; continue with {resume}", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


if __name__ == "__main__":
    main()
