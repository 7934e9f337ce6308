"""Third-party segmentation models by name, weights off: smp, torchvision, Hugging Face.

Each builder takes the class count as ``num_classes`` (the module fills it in from the
hierarchy and the loss) and passes it on under its library's own name. The libraries
are imported when a builder runs: install them with ``pip install "hl_lightning[zoo]"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from hl_lightning.models._libraries import import_library, with_download_hint

__all__ = ["hf_model", "smp_model", "torchvision_model"]


def smp_model(
    num_classes: int,
    arch: str = "Unet",
    encoder_name: str = "resnet18",
    encoder_weights: str | None = None,
    in_channels: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Return ``segmentation_models_pytorch.create_model(arch, encoder_name, ...)``.

    ``arch`` is any of smp's architectures (``Unet``, ``FPN``, ``DeepLabV3Plus``,
    ``Segformer``, ...), ``encoder_name`` any of its encoders (``resnet18``,
    ``efficientnet-b0``, ``tu-<timm name>``, ...); ``encoder_weights=None`` (the default
    here, not smp's) starts from random weights with no download. Other keyword arguments
    go to the architecture (``decoder_channels``, ``encoder_depth``, ...).

    Example:
        >>> net = smp_model(5, arch="FPN", encoder_name="resnet18")
        >>> type(net).__name__
        'FPN'
    """
    smp = import_library("segmentation_models_pytorch", "segmentation-models-pytorch")
    return with_download_hint(
        lambda: smp.create_model(
            arch,
            encoder_name=encoder_name,
            encoder_weights=encoder_weights,
            in_channels=in_channels,
            classes=num_classes,
            **kwargs,
        ),
        "encoder_weights",
        encoder_weights,
    )


def torchvision_model(
    num_classes: int,
    name: str = "deeplabv3_mobilenet_v3_large",
    weights: str | None = None,
    weights_backbone: str | None = None,
    aux_loss: bool | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Return torchvision's segmentation model ``name`` with ``num_classes`` outputs.

    ``name`` is one of ``torchvision.models.list_models(module=torchvision.models.segmentation)``
    (``fcn_resnet50``, ``deeplabv3_resnet50``, ``deeplabv3_mobilenet_v3_large``,
    ``lraspp_mobilenet_v3_large``, ...). ``weights`` and ``weights_backbone`` are off by
    default (torchvision's own default downloads ImageNet weights for the backbone).
    ``aux_loss=None`` turns the auxiliary head on where the model has one (FCN, DeepLabV3):
    its output joins the training loss with the module's ``aux_weight``.

    Example:
        >>> net = torchvision_model(5, "lraspp_mobilenet_v3_large")
        >>> type(net).__name__
        'LRASPP'
    """
    models = import_library("torchvision.models", "torchvision")
    segmentation = importlib.import_module("torchvision.models.segmentation")
    names = models.list_models(module=segmentation)
    if name not in names:
        raise ValueError(
            f"backbone.name={name!r} is not a torchvision segmentation model; known: "
            f"{', '.join(names)}"
        )
    has_aux = not name.startswith("lraspp")
    if aux_loss and not has_aux:
        raise ValueError(f"torchvision's {name} has no auxiliary head: set backbone.aux_loss=null")
    if has_aux:
        kwargs["aux_loss"] = True if aux_loss is None else aux_loss
    return with_download_hint(
        lambda: with_download_hint(
            lambda: models.get_model(
                name,
                weights=weights,
                weights_backbone=weights_backbone,
                num_classes=num_classes,
                **kwargs,
            ),
            "weights_backbone",
            weights_backbone,
        ),
        "weights",
        weights,
    )


def hf_model(
    num_classes: int,
    model_type: str = "segformer",
    config: Mapping[str, Any] | None = None,
    in_channels: int = 3,
) -> nn.Module:
    """Return a Hugging Face semantic-segmentation model built from its config (no download).

    ``model_type`` is a transformers model type with a semantic-segmentation head
    (``segformer``, ``mobilevit``, ``mobilevitv2``, ``beit``, ``dpt``, ``upernet``, ...):
    ``AutoModelForSemanticSegmentation.from_config(AutoConfig.for_model(model_type,
    **config))`` with ``num_labels=num_classes``; ``config`` sets the architecture
    (``hidden_sizes``, ``depths``, ...), else the type's defaults. Its ``ModelOutput``'s
    ``logits`` (often at a quarter of the input size) are what the module trains.

    Example:
        >>> net = hf_model(5, "segformer", {"hidden_sizes": [8, 16, 24, 32], "depths": [1, 1, 1, 1],
        ...                                 "decoder_hidden_size": 32})
        >>> net.config.num_labels
        5
    """
    transformers = import_library("transformers", "transformers")
    options = {"num_channels": in_channels, **(config or {}), "num_labels": num_classes}
    auto_config = transformers.AutoConfig.for_model(model_type, **options)
    return transformers.AutoModelForSemanticSegmentation.from_config(auto_config)
