"""Any timm encoder (``features_only``) with a light FPN-style head of ours: K logits per pixel."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hl_lightning.models._libraries import import_library, with_download_hint

__all__ = ["TimmFPN"]


class TimmFPN(nn.Module):
    """A timm encoder's feature maps, fused by a light head into logits (B, K, H/s, W/s).

    Each feature map of ``timm.create_model(encoder_name, features_only=True)`` is
    projected to ``decoder_channels`` by a 1x1 convolution, up-sampled to the finest
    map's size and summed; a 3x3 convolution (batch norm, ReLU) and a 1x1 convolution to
    ``num_classes`` follow. The logits are at the finest feature map's stride ``s``
    (often 2 or 4); the module up-samples them to the target. Any timm encoder with
    ``features_only`` works (ResNets, ConvNeXt, EfficientNets, ViTs, ...).

    Args:
        num_classes: K, the number of output channels.
        encoder_name: a timm model name (``timm.list_models()``).
        pretrained: load timm's pretrained weights (a download; off by default).
        in_channels: image channels.
        decoder_channels: channels of the fused features.
        out_indices: which feature maps to fuse (timm's ``out_indices``); default all.
        **encoder_kwargs: more ``timm.create_model`` arguments (``img_size`` for a ViT, ...).

    Example:
        >>> net = TimmFPN(5, "resnet18", decoder_channels=16)
        >>> net(torch.randn(1, 3, 64, 64)).shape
        torch.Size([1, 5, 32, 32])
    """

    def __init__(
        self,
        num_classes: int,
        encoder_name: str = "resnet18",
        pretrained: bool = False,
        in_channels: int = 3,
        decoder_channels: int = 64,
        out_indices: list[int] | None = None,
        **encoder_kwargs: Any,
    ) -> None:
        super().__init__()
        timm = import_library("timm", "timm")
        if out_indices is not None:
            encoder_kwargs["out_indices"] = tuple(out_indices)
        self.encoder = with_download_hint(
            lambda: timm.create_model(
                encoder_name,
                features_only=True,
                pretrained=pretrained,
                in_chans=in_channels,
                **encoder_kwargs,
            ),
            "pretrained",
            pretrained,
        )
        self.channels = list(self.encoder.feature_info.channels())
        self.lateral = nn.ModuleList(nn.Conv2d(c, decoder_channels, 1) for c in self.channels)
        self.fuse = nn.Sequential(
            nn.Conv2d(decoder_channels, decoder_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(decoder_channels),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(decoder_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits (B, K, H/s, W/s) of images x (B, C, H, W)."""
        features = self.encoder(x)
        size = max((f.shape[-2:] for f in self._nchw(features)), key=lambda s: s[0] * s[1])
        fused = sum(
            F.interpolate(lateral(f), size=size, mode="bilinear", align_corners=False)
            for lateral, f in zip(self.lateral, self._nchw(features), strict=True)
        )
        return self.head(self.fuse(fused))

    def _nchw(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Return the feature maps channels-first (some timm encoders give NHWC)."""
        return [
            f.permute(0, 3, 1, 2) if f.shape[1] != c and f.shape[-1] == c else f
            for f, c in zip(features, self.channels, strict=True)
        ]
