"""hl-train's loggers: each checked for its package (named with the extra that installs it),
W&B runs started at set-up, MLflow's local file store allowed."""

from __future__ import annotations

import importlib.util
import logging
import os
from urllib.parse import urlparse

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig

from hl_lightning.cli.config_check import ConfigError, building

__all__ = ["LOGGER_PACKAGES", "make_loggers"]

log = logging.getLogger(__name__)

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
            hint = f"needs the {modules[0]} package: {install}"
            if kind == "TensorBoardLogger" and len(specs) > 1:
                log.warning("logger.%s %s (skipped)", name, hint)
                continue
            raise ConfigError(f"logger.{name!s}", hint)
        if kind.endswith("MLFlowLogger"):
            _allow_mlflow_file_store(spec.get("tracking_uri"))
        with building(f"logger.{name!s}"):
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
            f"logger.{name}", f"{error} Or log offline: logger.{name}.offline=true"
        ) from None


def _allow_mlflow_file_store(uri: str | None) -> None:
    """Let MLflow (3.x: refused unless ``MLFLOW_ALLOW_FILE_STORE``) write to a file store.

    The file store is what ``logger=mlflow`` writes by default (``file:./mlruns``): the
    ``[mlflow]`` extra (mlflow-skinny) has no database store, and a file store needs no server.
    """
    if uri is not None and urlparse(str(uri)).scheme in ("", "file"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
