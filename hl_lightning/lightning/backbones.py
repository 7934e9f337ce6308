"""Backbones from config: fill in the class count under the library's own key, instantiate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from torch import nn

__all__ = ["CLASS_COUNT_KEYS", "BackboneConfigError", "build_backbone", "with_class_count"]


class BackboneConfigError(ValueError):
    """A backbone config that builds no network: the message says what its library refused."""


#: The keys under which libraries take the number of output channels, tried in this order.
CLASS_COUNT_KEYS = ("num_classes", "classes", "num_labels", "n_classes", "out_channels")


def with_class_count(config: Mapping[str, Any], count: int) -> dict[str, Any]:
    """Return ``config`` with its class-count keys that are null set to ``count``.

    The class-count key is any of :data:`CLASS_COUNT_KEYS` (``num_classes`` for ours and
    torchvision, ``classes`` for smp, ``num_labels`` for Hugging Face, ...); a config with
    none of them raises, naming the keys to add.

    Example:
        >>> with_class_count({"_target_": "segmentation_models_pytorch.Unet", "classes": None}, 7)
        {'_target_': 'segmentation_models_pytorch.Unet', 'classes': 7}
    """
    keys = [key for key in CLASS_COUNT_KEYS if key in config]
    if not keys:
        target = config.get("_target_", "?")
        raise BackboneConfigError(
            f"the backbone config (_target_: {target}) has no class-count key: add the key its "
            f"library takes the number of output classes by, set to null (one of "
            f"{', '.join(CLASS_COUNT_KEYS)}; on the command line e.g. '+backbone.classes=null'), "
            f"and it becomes the {count} channels the loss needs"
        )
    return {**config, **{key: count for key in keys if config[key] is None}}


def build_backbone(config: Mapping[str, Any], count: int) -> nn.Module:
    """Return the backbone that ``config`` (a Hydra ``_target_`` mapping) builds, with
    ``count`` output channels filled in (:func:`with_class_count`).

    Example:
        >>> net = build_backbone({"_target_": "hl_lightning.models.UNet", "num_classes": None}, 5)
        >>> net.head.out_channels
        5
    """
    if "_target_" not in config:
        raise BackboneConfigError(
            f"the backbone config has no _target_ (keys: {sorted(config)}): choose a preset "
            "(backbone=unet, smp, torchvision, timm, hf) or give the class to build"
        )
    try:
        module = instantiate(with_class_count(config, count), _convert_="all")
    except InstantiationException as error:  # a value the library refuses: its own words
        if isinstance(error.__cause__, ValueError | KeyError):
            target = config["_target_"]
            raise BackboneConfigError(f"{target}: {error.__cause__}") from error.__cause__
        raise
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"the backbone config (_target_: {config['_target_']}) built a "
            f"{type(module).__name__}, not a torch.nn.Module"
        )
    return module
