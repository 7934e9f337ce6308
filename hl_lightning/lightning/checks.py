"""The module's set-up checks and helpers: input shapes, a missing backbone, batches."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hl_lightning.hierarchy import Hierarchy, class_label_ids, match_class_names
from hl_lightning.lightning.outputs import BackboneOutputError
from hl_lightning.options import OptionError

__all__ = [
    "ChannelCountError",
    "check_channels",
    "check_data_labels",
    "check_module_options",
    "data_input_shape",
    "dry_run",
    "input_shape_of",
    "missing_backbone",
    "non_finite_message",
    "unpack_batch",
]


class ChannelCountError(ValueError):
    """A backbone whose outputs have another channel count than the loss needs."""


def check_channels(
    logits: Tensor, count: int, tree_min: bool, shape: tuple[int, ...], what: str
) -> None:
    """Raise a ChannelCountError unless ``logits`` are (B, count, h, w), naming both counts
    (``tree_min``: the count is the tree's nodes) and the setting to change.

    Example:
        >>> check_channels(torch.zeros(1, 3, 4, 4), 3, False, (1, 3, 4, 4), "it returns")
    """
    if logits.dim() == 4 and logits.shape[1] == count:
        return
    channels = logits.shape[1] if logits.dim() > 1 else None
    if tree_min:
        has = f"loss 'tree_min' needs one channel per node of the tree, {count} nodes"
    else:
        has = f"the hierarchy has {count} leaves"
    hint = f"set the backbone's number of output classes to {count}"
    if what != "the backbone returns":
        hint += (
            " (auxiliary outputs are logits too; for other extra outputs override "
            "HierarchicalSegmenter.compute_logits to return the logits only)"
        )
    raise ChannelCountError(
        f"{what} {channels} channels (logits of shape {tuple(logits.shape)} for input "
        f"{shape}), but {has}: it must return (B, {count}, H, W); {hint}"
    )


def check_module_options(aux_weight: float, on_nonfinite: str, scheduler_interval: str) -> float:
    """Return ``aux_weight`` as a float; raise an :class:`OptionError` naming the first of the
    module's options that cannot be used.

    Example:
        >>> check_module_options(0.4, "skip", "step")
        0.4
    """
    weight = float(aux_weight)
    if not weight >= 0:
        raise OptionError("aux_weight", f"aux_weight must be finite and >= 0, got {weight}")
    if on_nonfinite not in ("error", "skip"):
        raise OptionError(
            "on_nonfinite", f"on_nonfinite must be 'error' or 'skip', got {on_nonfinite!r}"
        )
    if scheduler_interval not in ("epoch", "step"):
        raise OptionError(
            "scheduler_interval",
            f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}",
        )
    return weight


def non_finite_message(
    where: str,
    level_names: Sequence[str],
    loss_name: str,
    levels: Tensor,
    images: Tensor,
    outputs: Tensor,
    aux_loss: Tensor | None,
) -> str:
    """Return what is not finite in a step whose loss is not (``where`` it is): the input
    images, the backbone's outputs, the levels' losses (by name), the auxiliary heads' loss,
    or the loss itself.

    Example:
        >>> nan, ones = torch.tensor([1.0, float("nan")]), torch.ones(2)
        >>> non_finite_message("loss is nan", ["a"], "flat", ones[:1], ones, nan, None)
        'the loss is nan: non-finite 1 backbone output values'
    """
    causes = []
    if not torch.isfinite(images).all():
        causes.append(f"{int((~torch.isfinite(images)).sum())} input image values")
    if not torch.isfinite(outputs).all():
        causes.append(f"{int((~torch.isfinite(outputs)).sum())} backbone output values")
    bad = [n for n, v in zip(level_names, levels, strict=True) if not v.isfinite()]
    if bad:
        causes.append(f"the level losses of {', '.join(bad)}")
    if aux_loss is not None and not aux_loss.isfinite():
        causes.append("the auxiliary heads' loss")
    what = "; ".join(causes) or f"the {loss_name} loss itself (finite level losses)"
    return f"the {where}: non-finite {what}"


def dry_run(module: nn.Module, compute: Callable[[Tensor], Any], shape: tuple[int, ...]) -> Any:
    """Return ``compute`` of zeros of ``shape`` on ``module``'s device, in eval mode without
    gradients (the mode restored after); a failure is a RuntimeError that says how to set
    an input size the backbone takes.

    Example:
        >>> dry_run(nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1), (1, 3, 4, 4)).shape
        torch.Size([1, 2, 4, 4])
    """
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return compute(torch.zeros(shape, device=device))
    except BackboneOutputError:
        raise
    except Exception as error:
        raise RuntimeError(
            f"the backbone failed on the set-up dry run with input of shape {shape} "
            f"({type(error).__name__}: {error}). If it takes other input sizes only, "
            "set the model's input_shape (C, H, W) to one it takes (model.input_shape="
            "[3,H,W] on the command line), or the data's image_size"
        ) from error
    finally:
        module.train(was_training)


def missing_backbone(backbone_class: str | None) -> str:
    """Return the error message for a module built (or reloaded) without a backbone."""
    if backbone_class is None:
        return (
            "HierarchicalSegmenter needs a backbone: an nn.Module, or a config with _target_ "
            "(a backbone= preset)"
        )
    return (
        f"this checkpoint's backbone was passed as an object ({backbone_class}), which "
        "checkpoints do not hold: pass it again, built as for training: "
        f"HierarchicalSegmenter.load_from_checkpoint(path, backbone={backbone_class}(...)). "
        "A backbone given as a config (backbone= presets, hl-train) reloads with the path alone"
    )


def input_shape_of(value: Sequence[int]) -> tuple[int, int, int]:
    """Return ``value`` as a (C, H, W) tuple of ints; raise unless it has 3 positive sides."""
    shape = tuple(int(n) for n in value)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) with positive sides, got {value!r}")
    return shape[0], shape[1], shape[2]


def data_input_shape(datamodule: Any) -> tuple[int, int, int]:
    """Return (3, H, W) of the data module's ``image_size`` when it has one, else (3, 64, 64)."""
    size = getattr(datamodule, "image_size", None)
    if size is None:
        size = getattr(datamodule, "hparams", {}).get("image_size")
    if size is None:
        return (3, 64, 64)
    sides = [int(size)] * 2 if isinstance(size, int) else [int(s) for s in size]
    return (3, sides[0], sides[-1])


def check_data_labels(hierarchy: Hierarchy, datamodule: Any) -> None:
    """Raise a ValueError unless the data module's label ids (by its ``class_names``, and its
    ``label_ids`` where it has them) are the node ids of ``hierarchy``; a data module without
    class names (or None) passes. Unknown class names raise, listing them."""
    names = getattr(datamodule, "class_names", None)
    if names is None:
        return
    matched = match_class_names(hierarchy, list(names))
    data_ids = getattr(datamodule, "label_ids", None)
    other_ids = data_ids is not None and not torch.equal(
        data_ids, class_label_ids(hierarchy, list(names))
    )
    if matched.leaves != hierarchy.leaves or other_ids:
        raise ValueError(
            "the data's label ids follow another order than the hierarchy's leaves "
            "(or are node ids of another tree): give the model the data module's "
            "hierarchy (datamodule.hierarchy), or hierarchy.reorder(datamodule.class_names)"
        )


def unpack_batch(batch: Any) -> tuple[Tensor, Tensor]:
    """Return (images, masks) from a tuple/list batch or a dict with image and mask keys."""
    if isinstance(batch, Mapping):
        images, masks = batch["image"], batch["mask"]
    else:
        images, masks = batch[0], batch[1]
    return images, masks.long()
