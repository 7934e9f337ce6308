"""The paper's baseline network: a plain-torch U-Net with one logit per leaf class."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet"]

Norm = Literal["batch", "group"]
Up = Literal["bilinear", "transposed"]


def _norm(kind: Norm, channels: int) -> nn.Module:
    """Return a BatchNorm2d, or a GroupNorm with up to 8 groups, over ``channels``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class _ConvBlock(nn.Sequential):
    """Two (3x3 conv, norm, ReLU) layers: (B, C_in, H, W) -> (B, C_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, norm: Norm) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


class _UpBlock(nn.Module):
    """Up-sample, concatenate the skip connection, convolve: -> (B, C_out, H_skip, W_skip)."""

    def __init__(self, in_channels: int, out_channels: int, norm: Norm, up: Up) -> None:
        super().__init__()
        self.up: nn.Module
        if up == "transposed":
            self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2)
        else:  # bilinear up-sampling, then a 1x1 conv to halve the channels
            self.up = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bilinear = up == "bilinear"
        self.conv = _ConvBlock(2 * out_channels, out_channels, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Return the fused features (B, C_out, H_skip, W_skip) of x (B, C_in, h, w) and skip."""
        size = skip.shape[-2:]
        if self.bilinear:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = self.up(x)
        else:  # 2x up-sampling is short by one row/column where the skip size was odd
            x = self.up(x)
            x = F.pad(x, (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2]))
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """A U-Net (Ronneberger et al. 2015) mapping images (B, C, H, W) to logits (B, K, H, W).

    The first stage has ``width`` channels and each of the ``depth`` max-pool
    down-samplings doubles them; the decoder up-samples (with a transposed convolution or
    bilinearly), concatenates the encoder's features of the same scale and convolves.
    Any H, W of at least ``2 ** depth`` works: odd sizes are padded back in the decoder.
    The head is a 1x1 convolution to ``num_classes`` logits, one per leaf class, so the
    network trains with a flat or a hierarchical loss alike.

    Args:
        num_classes: K, the number of output channels (leaf classes).
        in_channels: C, the number of image channels.
        width: channels of the first stage.
        depth: number of down-samplings (0 gives a plain two-conv network).
        norm: ``"batch"`` (BatchNorm) or ``"group"`` (GroupNorm, for tiny batches).
        up: ``"transposed"`` (2x2 stride-2 transposed convolution, the original's
            "up-convolution"; about 15% faster on a CPU) or ``"bilinear"`` (interpolation,
            then a 1x1 convolution).

    Example:
        >>> net = UNet(num_classes=13, width=8, depth=2)
        >>> net(torch.randn(2, 3, 37, 50)).shape
        torch.Size([2, 13, 37, 50])
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        width: int = 16,
        depth: int = 3,
        norm: Norm = "batch",
        up: Up = "transposed",
    ) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1 or width < 1 or depth < 0:
            raise ValueError(
                "UNet needs num_classes, in_channels and width >= 1 and depth >= 0, got "
                f"num_classes={num_classes}, in_channels={in_channels}, width={width}, "
                f"depth={depth}"
            )
        if norm not in ("batch", "group"):
            raise ValueError(f"norm must be 'batch' or 'group', got {norm!r}")
        if up not in ("bilinear", "transposed"):
            raise ValueError(f"up must be 'bilinear' or 'transposed', got {up!r}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.depth = depth
        channels = [width * 2**i for i in range(depth + 1)]
        self.stem = _ConvBlock(in_channels, channels[0], norm)
        self.down = nn.ModuleList(
            _ConvBlock(channels[i], channels[i + 1], norm) for i in range(depth)
        )
        self.ups = nn.ModuleList(
            _UpBlock(channels[i + 1], channels[i], norm, up) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(channels[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits (B, K, H, W) of images x (B, C, H, W)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNet expects images (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < 2**self.depth:
            raise ValueError(
                f"UNet with depth {self.depth} needs H and W >= {2**self.depth}, "
                f"got {tuple(x.shape[-2:])}"
            )
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for block in self.ups:
            x = block(x, skips.pop())
        return self.head(x)
