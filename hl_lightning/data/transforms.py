"""Paired image/mask transforms: resize, random scale and crop, horizontal flip, normalisation.

Images are (3, H, W) uint8 tensors, masks (H, W) int64 label ids. Every geometric step is
applied identically to both: images are resized bilinearly (antialiased when shrinking),
masks with nearest-neighbour so that label ids stay label ids. A horizontal flip can swap
left/right classes (``left_eye`` <-> ``right_eye``): give the label permutation of
:func:`flip_labels`.

Randomness comes from the ``generator`` passed to :meth:`PairedTransform.__call__`, so a
sample's augmentation is reproducible given the generator's seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PairedTransform", "flip_labels", "image_size"]

#: Per-channel mean and standard deviation of ImageNet's RGB images in [0, 1].
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def image_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """Return ``size`` as ``(height, width)``: an int is a square side, None stays None.

    Example:
        >>> image_size(256), image_size([240, 320]), image_size(None)
        ((256, 256), (240, 320), None)
    """
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be a positive int or [height, width], got {size}")
    return size


def flip_labels(class_names: Sequence[str], flip_pairs: Sequence[Sequence[str]]) -> tuple[int, ...]:
    """Return the label permutation of a horizontal flip: label ``i`` becomes ``result[i]``.

    ``flip_pairs`` lists pairs of class names that swap places in a mirrored image.

    Example:
        >>> flip_labels(["bg", "left_eye", "right_eye"], [["left_eye", "right_eye"]])
        (0, 2, 1)
    """
    ids = {name: i for i, name in enumerate(class_names)}
    permutation = list(range(len(ids)))
    seen: set[str] = set()
    for pair in flip_pairs:
        names = [str(name) for name in pair]
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"a flip pair names two different classes, got {names}")
        unknown = [name for name in names if name not in ids]
        if unknown:
            raise ValueError(f"flip pair {names}: not class names: {', '.join(unknown)}")
        twice = [name for name in names if name in seen]
        if twice:
            raise ValueError(f"flip pair {names}: {', '.join(twice)} already in another pair")
        seen.update(names)
        a, b = ids[names[0]], ids[names[1]]
        permutation[a], permutation[b] = b, a
    return tuple(permutation)


def _resize(
    image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return image (3, h, w) float resized bilinearly and mask (h, w) by nearest neighbour."""
    if tuple(image.shape[-2:]) == size:
        return image, mask
    shrink = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    image = F.interpolate(
        image[None], size=size, mode="bilinear", align_corners=False, antialias=shrink
    )[0]
    # float32 holds label ids exactly (below 2**24); nearest-exact picks the pixel centre
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    return image, mask.long()


class PairedTransform:
    """Transform an (image, mask) pair: resize, optional random scale/crop and flip, normalise.

    Steps, in order:

    1. resize to ``size`` (skipped when ``size`` is None); in training, to ``size``
       times a random factor drawn uniformly from ``scale``;
    2. when the scaled pair is larger than ``size``, cut a random ``size`` window
       (random crop); when smaller, pad the image with the mean colour and the mask with
       ``ignore_index`` at the bottom and right;
    3. mirror left-right with probability ``hflip``, mapping labels through
       ``flip_map`` (see :func:`flip_labels`);
    4. scale to [0, 1] and normalise with ``mean`` and ``std``.

    The default arguments give the evaluation transform: resize and normalise only.

    Args:
        size: output ``(height, width)`` (or an int for a square); None keeps the size.
        scale: range of the random scale factor (``(1, 1)``: no scaling nor cropping).
        hflip: probability of a horizontal flip.
        flip_map: label permutation applied on a flip (None: labels unchanged).
        mean, std: per-channel normalisation of the [0, 1] image.
        ignore_index: mask value of padding (and left unchanged by ``flip_map``).

    Example:
        >>> transform = PairedTransform(size=8, scale=(1.0, 2.0), hflip=0.5)
        >>> image = torch.randint(256, (3, 12, 16), dtype=torch.uint8)
        >>> mask = torch.randint(3, (12, 16))
        >>> out_image, out_mask = transform(image, mask, torch.Generator().manual_seed(0))
        >>> out_image.shape, out_mask.shape, out_image.dtype, out_mask.dtype
        (torch.Size([3, 8, 8]), torch.Size([8, 8]), torch.float32, torch.int64)
    """

    def __init__(
        self,
        size: int | Sequence[int] | None = None,
        scale: Sequence[float] = (1.0, 1.0),
        hflip: float = 0.0,
        flip_map: Sequence[int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = 255,
    ) -> None:
        low, high = (float(s) for s in scale)
        if not 0 < low <= high:
            raise ValueError(f"scale must be a range [low, high] with 0 < low <= high, got {scale}")
        if not 0 <= hflip <= 1:
            raise ValueError(f"hflip is a probability in [0, 1], got {hflip}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std need 3 values each (std > 0), got {mean}, {std}")
        self.size = image_size(size)
        self.scale = (low, high)
        self.hflip = float(hflip)
        self.flip_map = None if flip_map is None else torch.tensor(list(flip_map))
        self.mean = torch.tensor([float(m) for m in mean])[:, None, None]
        self.std = torch.tensor([float(s) for s in std])[:, None, None]
        self.ignore_index = ignore_index

    def __repr__(self) -> str:
        flips = None if self.flip_map is None else self.flip_map.tolist()
        return (
            f"PairedTransform(size={self.size}, scale={self.scale}, hflip={self.hflip}, "
            f"flip_map={flips})"
        )

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the transformed image (3, H, W) float32 and mask (H, W) int64.

        ``image`` is (3, h, w) uint8 (or float in [0, 1]), ``mask`` (h, w) integer label
        ids; random draws use ``generator`` (torch's default generator when None).
        """
        if image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(
                f"image {tuple(image.shape[-2:])} and mask {tuple(mask.shape)} sizes differ"
            )
        image = image.float() / 255 if not image.is_floating_point() else image.float()
        image = (image - self.mean) / self.std  # normalised before padding: pad = mean colour
        mask = mask.long()
        low, high = self.scale
        target = self.size or (image.shape[-2], image.shape[-1])
        if high > 1 or low < 1:
            factor = low + (high - low) * torch.rand((), generator=generator).item()
            scaled = (max(1, round(target[0] * factor)), max(1, round(target[1] * factor)))
            image, mask = _resize(image, mask, scaled)
            image, mask = self._crop(image, mask, target, generator)
        else:
            image, mask = _resize(image, mask, target)
        if self.hflip and torch.rand((), generator=generator).item() < self.hflip:
            image, mask = image.flip(-1), mask.flip(-1)
            if self.flip_map is not None:
                labelled = (mask >= 0) & (mask < len(self.flip_map))
                mapped = self.flip_map[mask.clamp(0, len(self.flip_map) - 1)]
                mask = torch.where(labelled, mapped, mask)
        return image.contiguous(), mask.contiguous()

    def _crop(
        self,
        image: torch.Tensor,
        mask: torch.Tensor,
        size: tuple[int, int],
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a random ``size`` window of the pair, padding where it is smaller."""
        height, width = mask.shape
        pad_h, pad_w = max(0, size[0] - height), max(0, size[1] - width)
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            mask = F.pad(mask, (0, pad_w, 0, pad_h), value=self.ignore_index)
            height, width = mask.shape
        top = int(torch.randint(height - size[0] + 1, (), generator=generator))
        left = int(torch.randint(width - size[1] + 1, (), generator=generator))
        rows, cols = slice(top, top + size[0]), slice(left, left + size[1])
        return image[:, rows, cols], mask[rows, cols]
