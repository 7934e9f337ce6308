"""hl-eval: evaluate a checkpoint with one or several decodings side by side (a Hydra app).

Usage::

    hl-eval ckpt_path=outputs/train/RUN/checkpoints/last.ckpt decode=[marginal,crm]
    hl-eval ckpt_path=... temperature=fit threshold=0.8          # calibrated node predictions
    hl-eval ckpt_path=... data=folder data.root=DIR data.class_names=classes.txt

The model (any loss, flat included) and its tree come from the checkpoint; the data from
the checkpoint's run (``<run>/.hydra/config.yaml``, the run hl-train wrote) or from a
``data=`` preset as for hl-train (its class names matched to the leaves by name). Per
decoding: per-level mIoU and pixel accuracy, mistake severity and serious share,
per-level calibration error and inconsistency; once: node predictions at ``threshold``
(hP, hR, hF) and their operating curve over ``thresholds`` (its area, points and plot),
after an optional temperature (``temperature=fit``: fitted on the validation split).
Results go to ``results.json``, ``decodings.csv``, ``hpr_curve.csv`` and ``hpr_curve.png``
in the output directory. A problem with the inputs ends the run with one line on stderr
and exit status 1.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import Tensor

from hl_lightning.atomic import DiskFullError
from hl_lightning.cli._eval_report import EvalReport, print_report, write_report
from hl_lightning.cli._launch import importable_launch_directory, user_message
from hl_lightning.cli._quiet import quiet_third_party
from hl_lightning.cli._version import version_text
from hl_lightning.cli.config_check import ConfigError, check_node
from hl_lightning.data import SegmentationDataModule
from hl_lightning.data.io import BadDataError
from hl_lightning.decode import DecodeMethod, check_method, check_threshold, check_thresholds
from hl_lightning.hierarchy import Hierarchy, HierarchyError, match_class_names
from hl_lightning.lightning.checkpoints import CheckpointError, read_checkpoint
from hl_lightning.lightning.module import HierarchicalSegmenter, MissingBackboneError
from hl_lightning.metrics import (
    HierarchicalCalibrationError,
    HierarchicalOperatingCurve,
    HierarchicalPrecisionRecall,
    HierarchicalSegmentationMetrics,
    TemperatureFit,
    TemperatureScaling,
)
from hl_lightning.options import OptionError

__all__ = ["EvalError", "EvalOptions", "check_options", "evaluate", "main", "run"]

PROG = "hl-eval"
log = logging.getLogger(__name__)


class EvalError(ValueError):
    """A problem with hl-eval's inputs: an option, the checkpoint, the data."""


@dataclass(frozen=True)
class EvalOptions:
    """hl-eval's options, checked (see ``hl-eval --help``)."""

    ckpt_path: Path
    decodings: tuple[DecodeMethod, ...]
    threshold: float
    thresholds: tuple[float, ...]
    temperature: float | str | None  # a number, "fit", or None
    split: str
    device: str
    max_batches: int | None
    output_dir: Path


def check_options(cfg: DictConfig) -> EvalOptions:
    """Return the options of ``cfg``; raise an :class:`EvalError` naming the first bad one.

    Nothing is read before they are known to be valid.
    """
    if cfg.get("ckpt_path") in (None, ""):
        raise EvalError("no checkpoint: give ckpt_path=PATH (e.g. a run's checkpoints/last.ckpt)")
    path = Path(str(cfg.ckpt_path))
    names = cfg.decode
    names = list(names) if isinstance(names, ListConfig | list | tuple) else [names]
    if not names:
        raise EvalError("decode: give at least one decoding (marginal, leaf, top_down, crm)")
    try:
        decodings = tuple(dict.fromkeys(check_method(str(name)) for name in names))
        threshold = check_threshold(cfg.threshold)
        grid = cfg.thresholds
        grid = list(grid) if isinstance(grid, ListConfig) else grid
        thresholds = check_thresholds(grid)
    except ValueError as error:
        raise EvalError(str(error)) from None
    return EvalOptions(
        ckpt_path=path,
        decodings=decodings,
        threshold=threshold,
        thresholds=thresholds,
        temperature=_temperature_option(cfg.get("temperature")),
        split=_choice("split", cfg.get("split", "test"), ("test", "val")),
        device=str(cfg.get("device", "cpu")),
        max_batches=_max_batches(cfg.get("max_batches")),
        output_dir=Path(str(cfg.paths.output_dir)),
    )


def _temperature_option(value: Any) -> float | str | None:
    """Return None, ``"fit"`` or a positive finite temperature; raise an EvalError otherwise."""
    if value is None or value == "fit":
        return value
    if not isinstance(value, bool) and isinstance(value, int | float) and 0 < value < float("inf"):
        return float(value)
    raise EvalError(f"temperature={value!r}: use fit, a positive number, or null (none)")


def _choice(key: str, value: Any, valid: Sequence[str]) -> str:
    if value not in valid:
        raise EvalError(f"{key}={value!r}: use {' or '.join(valid)}")
    return str(value)


def _max_batches(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvalError(f"max_batches={value!r}: use a positive number of batches, or null (all)")
    return value


def load_model(path: Path, device: str) -> HierarchicalSegmenter:
    """Return the checkpoint's model in eval mode on ``device``.

    The file is checked first (:func:`~hl_lightning.lightning.checkpoints.read_checkpoint`:
    missing, truncated, foreign or non-finite is a :class:`CheckpointError` naming it).
    """
    read_checkpoint(path)
    try:
        model = HierarchicalSegmenter.load_from_checkpoint(path, map_location=device)
    except MissingBackboneError as error:
        raise EvalError(f"{path}: {error}") from None
    return model.eval()


def run_data_config(ckpt_path: Path) -> DictConfig:
    """Return the ``data`` node of the run that wrote ``ckpt_path`` (``<run>/checkpoints/``),
    in the context of its whole saved config (its interpolations resolve there)."""
    saved = ckpt_path.resolve().parent.parent / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise EvalError(
            f"no data given and no run config at {saved}: give the data as for hl-train "
            "(e.g. data=synthetic, or data=folder data.root=DIR data.class_names=[...])"
        )
    config = OmegaConf.load(saved)
    if not isinstance(config, DictConfig) or "data" not in config:
        raise EvalError(f"{saved}: no data config in the run's saved config")
    return cast(DictConfig, config.data)


def build_data(cfg: DictConfig, ckpt_path: Path) -> Any:
    """Return the data module: ``cfg.data`` when given, else the checkpoint's run's."""
    node = cfg.data if cfg.get("data") is not None else run_data_config(ckpt_path)
    try:
        check_node("data", node)
        return instantiate(node)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise EvalError(f"config key data: {user_message(cause)}") from None
    except ConfigError as error:
        raise EvalError(str(error)) from None


def match_classes(hierarchy: Hierarchy, datamodule: Any) -> tuple[Hierarchy, Tensor]:
    """Return the model's tree matched to the data's class names by name (coarse classes
    included: :func:`~hl_lightning.hierarchy.match_class_names`), which the data module
    then labels its masks with, and the index (K,) of each matched leaf among the model's
    outputs; an EvalError listing the names that differ."""
    names = [str(name) for name in datamodule.class_names]
    try:
        if isinstance(datamodule, SegmentationDataModule):
            matched = datamodule.use_hierarchy(hierarchy)
        else:
            matched = match_class_names(hierarchy, names)
    except (HierarchyError, OptionError) as error:
        raise EvalError(f"the data's classes do not fit the checkpoint's tree: {error}") from None
    return matched, torch.tensor([hierarchy.leaves.index(name) for name in matched.leaves])


def _loader(datamodule: Any, split: str) -> Any:
    """Return the data loader of ``split`` ("test" or "val"), set up."""
    datamodule.setup("test" if split == "test" else "validate")
    return datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()


@torch.no_grad()
def _logits(
    model: HierarchicalSegmenter,
    loader: Any,
    order: Tensor,
    device: str,
    max_batches: int | None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (leaf logits (B, K, H, W) in the data's class order, masks (B, H, W)) per batch."""
    order = order.to(device)
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        images, masks = (batch["image"], batch["mask"]) if isinstance(batch, dict) else batch[:2]
        logits = model.leaf_logits(model(images.to(device))).float()
        yield logits.index_select(1, order), masks.to(device).long()


def fit_on_validation(
    model: HierarchicalSegmenter,
    datamodule: Any,
    hierarchy: Hierarchy,
    order: Tensor,
    options: EvalOptions,
    ignore_index: int,
) -> TemperatureFit:
    """Return the temperature fitted on the validation split (see :class:`TemperatureScaling`)."""
    scaling = TemperatureScaling(hierarchy, ignore_index)
    loader = _loader(datamodule, "val")
    for logits, masks in _logits(model, loader, order, options.device, options.max_batches):
        scaling.update(logits, masks)
    try:
        return scaling.fit()
    except ValueError as error:
        raise EvalError(f"temperature=fit: {error}") from None


def evaluate(cfg: DictConfig) -> EvalReport:
    """Evaluate as ``cfg`` says; return the report (also written to the output directory)."""
    options = check_options(cfg)
    model = load_model(options.ckpt_path, options.device)
    datamodule = build_data(cfg, options.ckpt_path)
    hierarchy, order = match_classes(model.hierarchy, datamodule)
    ignore = int(getattr(datamodule, "ignore_index", model.ignore_index))
    fit = None
    temperature = options.temperature if isinstance(options.temperature, float) else 1.0
    if options.temperature == "fit":
        fit = fit_on_validation(model, datamodule, hierarchy, order, options, ignore)
        temperature = fit.temperature
    decodings = {
        method: HierarchicalSegmentationMetrics(hierarchy, ignore, method).to(options.device)
        for method in options.decodings
    }
    nodes = HierarchicalPrecisionRecall(hierarchy, options.threshold, ignore).to(options.device)
    curve = HierarchicalOperatingCurve(hierarchy, options.thresholds, ignore).to(options.device)
    scaled_ece = HierarchicalCalibrationError(hierarchy, ignore).to(options.device)
    loader = _loader(datamodule, options.split)
    batches = 0
    for logits, masks in _logits(model, loader, order, options.device, options.max_batches):
        for metric in decodings.values():
            metric.update(logits, masks)
        scaled = logits / temperature
        nodes.update(scaled, masks)
        curve.update(scaled, masks)
        if temperature != 1.0:
            scaled_ece.update(scaled, masks)
        batches += 1
    if not batches:
        raise EvalError(f"the {options.split} split has no batches to evaluate")
    report = EvalReport(
        checkpoint=str(options.ckpt_path),
        split=options.split,
        batches=batches,
        level_names=hierarchy.level_names,
        decodings={method: metric.compute() for method, metric in decodings.items()},
        threshold=options.threshold,
        temperature=temperature,
        fit=fit,
        nodes=nodes.compute(),
        curve=curve.compute(),
        ece_at_temperature=scaled_ece.compute() if temperature != 1.0 else None,
    )
    write_report(report, options.output_dir)
    return report


#: Problems of the user's input that end hl-eval with their message alone.
_USER_ERRORS = (
    EvalError,
    BadDataError,
    CheckpointError,
    ConfigError,
    DiskFullError,
    HierarchyError,
)


def main() -> None:
    """Run ``hl-eval``: ``--version`` prints the versions, anything else runs :func:`run`."""
    if "--version" in sys.argv[1:]:
        print(version_text(PROG))
        return
    run()


@hydra.main(version_base="1.3", config_path="pkg://hl_lightning.conf", config_name="eval")
def run(cfg: DictConfig) -> None:
    """Run ``hl-eval`` (Hydra: ``hl-eval ckpt_path=... key=value ...``, ``--help``).

    A problem with the inputs (an option, the checkpoint, the data, a full disk) ends it
    with one line on stderr and exit status 1.
    """
    quiet_third_party()
    importable_launch_directory()
    log.info("output directory: %s", HydraConfig.get().runtime.output_dir)
    try:
        report = evaluate(cfg)
    except _USER_ERRORS as error:  # one line on stderr, no traceback
        print(f"{PROG}: error: {user_message(error)}", file=sys.stderr)
        raise SystemExit(1) from None
    print_report(report, Path(str(cfg.paths.output_dir)))


if __name__ == "__main__":
    main()
