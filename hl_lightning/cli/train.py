"""hl-train: the Hydra app that trains a HierarchicalSegmenter (``-m hl_lightning.cli.train``).

Compose the config from ``conf/`` groups, instantiate data, hierarchy, model, loggers,
callbacks and trainer, fit, test with the best checkpoint, and return the final metrics.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from hl_lightning.atomic import DiskFullError
from hl_lightning.cli._launch import importable_launch_directory, user_message
from hl_lightning.cli._quiet import quiet_third_party
from hl_lightning.cli._version import version_text
from hl_lightning.cli.build import ConfigError, build_run
from hl_lightning.cli.records import record_dir
from hl_lightning.cli.resume import (
    ResumeError,
    check_checkpoint_fits,
    resume_config,
    resume_run_dir,
)
from hl_lightning.cli.sweep_dirname import sweep_argv, sweep_dirname
from hl_lightning.data.io import BadDataError
from hl_lightning.hierarchy import HierarchyError
from hl_lightning.lightning.module import (
    ChannelCountError,
    MissingBackboneError,
    NonFiniteLossError,
)

log = logging.getLogger(__name__)

#: Problems of the user's input that end a run with their message alone (no traceback).
_USER_ERRORS = (
    BadDataError,
    ChannelCountError,
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


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and test) as ``cfg`` says; return the final logged metrics as floats."""
    run = build_run(cfg, interactive=sys.stdout.isatty())
    datamodule, model, trainer = run.datamodule, run.model, run.trainer
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
            "optimized_metric",
            f"{name!r} was not logged; the run logged {logged} (and per level: <key>/<level name>)",
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
    non-finite loss, a full disk, ...) ends the run with its message on stderr and exit
    status 1. SIGTERM ends it, once ``last.ckpt`` is saved, with status 143 (128 + 15).
    """
    quiet_third_party()
    importable_launch_directory()
    hydra_cfg = HydraConfig.get()
    out = hydra_cfg.runtime.output_dir
    log.info("run directory: %s", out)
    log.info("overrides: %s", " ".join(hydra_cfg.overrides.task) or "(none)")
    record = record_dir(hydra_cfg)
    if record is not None:  # None in the processes Lightning's DDP starts
        log.info("the resolved config: %s/%s/config.yaml", out, record)
    try:
        if cfg.get("resume"):
            cfg = resume_config(cfg.resume, list(hydra_cfg.overrides.task))
            log.info("resuming %s from %s (its saved config)", cfg.paths.output_dir, cfg.ckpt_path)
        return optimized_value(train(cfg), cfg.get("optimized_metric"))
    except _USER_ERRORS as error:
        message = user_message(error)
        log.error("%s: %s", type(error).__name__, message)
        print(f"hl-train: error: {message}", file=sys.stderr)
        raise SystemExit(1) from None
    except SIGTERMException:  # Lightning's stop (exit status 0); CheckpointOnSigterm saved
        resume = f"hl-train resume={cfg.paths.output_dir}"
        print(f"hl-train: stopped by SIGTERM; continue with {resume}", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None


if __name__ == "__main__":
    main()
