"""How validation, test and prediction run the network over an image: whole, or in windows.

``whole`` runs the network once on the image as the data gives it. ``slide`` runs it on
overlapping windows of ``crop_size`` every ``stride`` pixels and averages the logits
where windows overlap, as mmsegmentation's ``slide`` test mode: a network trained on
crops is evaluated on whole frames (Cityscapes, Mapillary) at the resolution it was
trained at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

__all__ = ["Inference", "InferenceMode", "resize_logits", "sides", "window_starts"]

#: ``whole``: one pass over the image; ``slide``: overlapping windows, logits averaged.
InferenceMode = Literal["whole", "slide"]


def resize_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    """Return logits (B, C, h, w) bilinearly resized to ``size`` (H, W) (unchanged if equal).

    Example:
        >>> import torch
        >>> resize_logits(torch.zeros(1, 3, 4, 4), (8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """
    if tuple(logits.shape[-2:]) != tuple(size):
        return F.interpolate(logits, size=tuple(size), mode="bilinear")
    return logits


def sides(value: Sequence[int] | None) -> tuple[int, int] | None:
    """Return [height, width] (a config list; one value: a square) as a tuple, None as None.

    Example:
        >>> sides([512, 1024]), sides([256]), sides(None)
        ((512, 1024), (256, 256), None)
    """
    return None if value is None else (int(value[0]), int(value[-1]))


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Return the first pixel of every window along a side of ``length`` pixels.

    Windows start every ``stride`` pixels; the last is moved back to end at the border,
    so windows cover the side and none runs past it (mmsegmentation's grid). A side no
    longer than the crop has one window.

    Example:
        >>> window_starts(10, 4, 3), window_starts(3, 4, 3)
        ([0, 3, 6], [0])
    """
    count = max(length - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, length) - crop, 0) for i in range(count)]


@dataclass(frozen=True)
class Inference:
    """How to run a network over images (B, C, H, W): ``mode`` and, for ``slide``, the
    window ``crop_size`` (h, w) and ``stride`` (h, w).

    Example:
        >>> import torch
        >>> net = torch.nn.Conv2d(3, 2, 1)
        >>> images = torch.randn(1, 3, 10, 12)
        >>> slide = Inference("slide", crop_size=(4, 6), stride=(3, 4))
        >>> torch.allclose(slide(net, images), net(images), atol=1e-6)  # 1x1 conv: equal
        True
    """

    mode: InferenceMode = "whole"
    crop_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("whole", "slide"):
            raise ValueError(f"inference must be 'whole' or 'slide', got {self.mode!r}")
        if self.mode == "whole":
            return
        for name in ("crop_size", "stride"):
            sides = getattr(self, name)
            if sides is None or len(sides) != 2 or not all(int(s) >= 1 for s in sides):
                raise ValueError(
                    f"inference 'slide' needs {name} as [height, width] of positive sides, "
                    f"got {sides!r}"
                )
            object.__setattr__(self, name, (int(sides[0]), int(sides[1])))
        assert self.crop_size is not None and self.stride is not None
        if any(s > c for s, c in zip(self.stride, self.crop_size, strict=True)):
            raise ValueError(
                f"inference 'slide' needs a stride no longer than the crop on each side, got "
                f"stride {list(self.stride)} for crop_size {list(self.crop_size)}: windows "
                "would leave pixels between them"
            )

    def __call__(self, forward: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
        """Return the logits (B, C, H, W) of ``forward`` over ``images`` (B, C', H, W);
        ``forward`` returns logits at its input's resolution."""
        if self.mode == "whole":
            return forward(images)
        assert self.crop_size is not None and self.stride is not None
        height, width = images.shape[-2:]
        rows = window_starts(height, self.crop_size[0], self.stride[0])
        columns = window_starts(width, self.crop_size[1], self.stride[1])
        total: Tensor | None = None
        count = images.new_zeros((1, 1, height, width))
        for top in rows:
            for left in columns:
                bottom, right = top + self.crop_size[0], left + self.crop_size[1]
                logits = forward(images[..., top:bottom, left:right])
                if total is None:
                    total = logits.new_zeros((*logits.shape[:2], height, width))
                total[..., top:bottom, left:right] += logits
                count[..., top:bottom, left:right] += 1
        assert total is not None
        return total / count.to(total.dtype)
