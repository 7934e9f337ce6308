"""The one place where hl-train's config becomes objects: data, class tree, model, trainer.

Every node is checked against what its target takes before it is built
(:mod:`hl_lightning.cli.config_check`), and a value its target refuses while being built
ends the run with a :class:`ConfigError` naming the config key, never a traceback.
The hierarchy is built once, for the data's class names, and handed to the model as an
object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import Callback, RichProgressBar
from omegaconf import DictConfig, OmegaConf

from hl_lightning.cli.config_check import (
    ConfigError,
    building,
    check_keys,
    check_node,
    check_values,
    parameter_hints,
)
from hl_lightning.cli.loggers import make_loggers
from hl_lightning.hierarchies import load_hierarchy
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.lightning.module import HierarchicalSegmenter
from hl_lightning.lightning.optimization import make_optimizer, make_scheduler
from hl_lightning.losses import LOSSES, LossName, build_loss, loss_options

__all__ = [
    "ConfigError",
    "Run",
    "build_hierarchy",
    "build_model",
    "build_run",
    "check_config",
    "make_callbacks",
    "make_loggers",
]

log = logging.getLogger(__name__)

#: The run's own top-level keys and their types (the groups are checked node by node).
RUN_KEYS: dict[str, Any] = {
    "task_name": str,
    "seed": int,
    "fit": bool,
    "test": bool,
    "resume": str | None,
    "ckpt_path": str | None,
    "optimized_metric": str | None,
    "checkpoint_every_n_steps": int,
}
#: The model keys the app fills in from the other groups.
_FILLED_MODEL_KEYS = (
    "backbone",
    "hierarchy",
    "loss",
    "level_weights",
    "loss_options",
    "ignore_index",
    "backbone_class",
)


@dataclass(frozen=True)
class Run:
    """What a config builds: the data module, the model (its hierarchy that of the data's
    class names) and the trainer with its loggers and callbacks."""

    datamodule: L.LightningDataModule
    model: HierarchicalSegmenter
    trainer: L.Trainer


def build_run(cfg: DictConfig, interactive: bool = False) -> Run:
    """Return the data module, model and trainer of ``cfg``, checked before anything is
    built (:func:`check_config`), seeded with ``cfg.seed``.

    Raises a :class:`ConfigError` naming the config key of the first value that cannot be
    used: a key its target does not take, a value of the wrong type, a value refused while
    building (``model.optimizer`` with a negative learning rate, ``data.batch_size=0``).
    """
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True)  # the weights and the data order
    with building("data"):
        datamodule = instantiate(cfg.data)
    model = build_model(cfg, datamodule)
    with building("trainer"):
        trainer: L.Trainer = instantiate(
            cfg.trainer,
            logger=make_loggers(cfg.get("logger")),
            callbacks=make_callbacks(cfg.get("callbacks"), interactive),
            enable_progress_bar=interactive,
        )
    return Run(datamodule, model, trainer)


def check_config(cfg: DictConfig) -> None:
    """Raise a :class:`ConfigError` for the first key of ``cfg`` that its target does not
    take or whose value has the wrong type; nothing is built. The trainer comes first:
    other groups interpolate its values (``T_max: ${trainer.max_epochs}``)."""
    check_values("", {k: cfg[k] for k in RUN_KEYS if k in cfg}, RUN_KEYS)
    check_node("trainer", cfg.trainer, skip=("logger", "callbacks", "enable_progress_bar"))
    check_node("data", cfg.data)
    _check_hierarchy(cfg.hierarchy)
    _check_loss(cfg.loss)
    check_node("backbone", cfg.backbone)
    check_node("model", cfg.model, skip=_FILLED_MODEL_KEYS)
    for key in ("optimizer", "scheduler"):
        if cfg.model.get(key) is not None:
            check_node(f"model.{key}", cfg.model[key])
    for group in ("logger", "callbacks"):
        for name, node in (cfg.get(group) or {}).items():
            if node is not None:
                check_node(f"{group}.{name!s}", node)


def build_model(cfg: DictConfig, datamodule: Any) -> HierarchicalSegmenter:
    """Return the configured model (``cfg.model`` around ``cfg.backbone``, trained with
    ``cfg.loss``) for the data's class names and the tree of ``cfg.hierarchy``."""
    hierarchy = build_hierarchy(cfg.hierarchy, datamodule.class_names)
    log.info("hierarchy %r", hierarchy)
    name, options = _loss_options(cfg.loss)
    with building("loss"):  # a value the loss refuses, named before the model is built
        build_loss(name, hierarchy, datamodule.ignore_index, **options)
    with building("model"):
        model = instantiate(
            cfg.model,
            backbone=cfg.backbone,
            hierarchy=hierarchy,
            loss=name,
            level_weights=options.pop("level_weights", None),
            loss_options=options,
            ignore_index=datamodule.ignore_index,
        )
    _check_optimizer(cfg.model, model)
    return model


def build_hierarchy(spec: DictConfig, class_names: tuple[str, ...]) -> Hierarchy:
    """Return the tree ``spec`` (``source``, ``level_names``) names, leaf ``i`` being the
    data's class ``i``: the one place where the app matches leaves to class names."""
    values = _check_hierarchy(spec)
    return load_hierarchy(values["source"], class_names, values.get("level_names"))


def _check_hierarchy(spec: DictConfig) -> dict[str, Any]:
    """Return the plain values of ``cfg.hierarchy``, checked."""
    check_keys("hierarchy", spec, ("source", "level_names"), "hierarchy")
    if OmegaConf.is_missing(spec, "source"):
        raise ConfigError("hierarchy.source", "has no value: name a built-in tree or a file")
    values = cast(dict, OmegaConf.to_container(spec, resolve=True))
    check_values("hierarchy", values, {"source": str, "level_names": list[str] | None})
    return values


def make_callbacks(cfg: DictConfig | None, interactive: bool) -> list[Callback]:
    """Return the configured callbacks, plus a Rich progress bar on a terminal."""
    callbacks = [
        _build_node(f"callbacks.{name!s}", spec)
        for name, spec in (cfg or {}).items()
        if spec is not None
    ]
    if interactive:
        callbacks.append(RichProgressBar())
    return callbacks


def _build_node(key: str, node: DictConfig) -> Any:
    """Return the object of the config node ``key`` (checked by :func:`check_config`)."""
    with building(key):
        return instantiate(node)


def _check_loss(loss: DictConfig) -> None:
    """Raise a ConfigError for an unknown loss name, an option it does not take or an
    option value of the wrong type."""
    name = loss.get("name")
    if name not in LOSSES:
        raise ConfigError("loss.name", f"{name!r} is not one of {', '.join(LOSSES)}")
    _, options = _loss_options(loss)
    check_keys("loss", options, loss_options(name), f"loss {name!r}")
    check_values("loss", options, parameter_hints(LOSSES[name]))


def _loss_options(loss: DictConfig) -> tuple[LossName, dict[str, Any]]:
    """Return the loss name and its options as plain data; ``level_weights: null`` is no
    option (it stays null for the losses without levels)."""
    container = cast(dict, OmegaConf.to_container(loss, resolve=True))
    options = {str(k): v for k, v in container.items() if k != "name"}
    if options.get("level_weights", 0) is None:
        del options["level_weights"]
    return cast(LossName, container["name"]), options


def _check_optimizer(model_cfg: DictConfig, model: HierarchicalSegmenter) -> None:
    """Build the optimizer and schedule once, so that a refused value (a negative learning
    rate) is named by its key at set-up, not when training starts."""
    with building("model.optimizer"):
        optimizer = make_optimizer(model.optimizer_factory, model.parameters())
    if model.scheduler_factory is not None:
        with building("model.scheduler"):  # any length: the run's is known at fit time
            make_scheduler(model.scheduler_factory, optimizer, 1)
