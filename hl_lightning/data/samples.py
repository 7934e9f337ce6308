"""A split's samples: one image and its mask files, checked at set-up and served decoded.

:class:`Sample` names a sample's files; :func:`check_sample` says what is wrong with them
from their headers (or, with ``verify``, from decoding them); :class:`SegmentationFiles`
serves the samples as ``(image, mask)`` pairs, decoded and augmented on access. Bad data
follows ``on_bad`` (:data:`OnBad`): raise a :class:`~hl_lightning.data.io.BadDataError`
naming the file, or skip it with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, get_worker_info

from hl_lightning.data.io import IMAGE_MODES, BadDataError, read_image
from hl_lightning.data.masks import MaskDecoder
from hl_lightning.data.seeds import derive_seed
from hl_lightning.data.transforms import PairedTransform

__all__ = ["OnBad", "Sample", "SegmentationFiles", "check_sample", "decode_sample"]

#: What bad data does: raise (``"error"``) or drop / ignore it with a warning (``"skip"``).
OnBad = Literal["error", "skip"]


@dataclass(frozen=True)
class Sample:
    """One image and its mask file(s): one label map, or several (e.g. one per class)."""

    name: str
    image: Path
    masks: tuple[Path, ...]


class SegmentationFiles(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """(image, mask) pairs read from files, decoded and transformed on access.

    Items are ``(image, mask)``: image (3, H, W) float32 normalised, mask (H, W) int64
    label ids or ``ignore_index``. Augmentations draw from a generator seeded from
    ``seed`` in the main process, and from the loader's per-worker seed in workers, so
    the samples of a run are reproducible given the seed.

    Args:
        samples: the files.
        decoder: reads a sample's mask files into a label map.
        transform: the paired transform.
        on_bad: ``"error"``: a mask value that is neither a label nor ignored raises
            :class:`BadDataError` naming the file; ``"skip"``: those pixels are ignored,
            with a warning naming the file.
        seed: seed of the augmentations.

    Example:
        >>> import tempfile
        >>> from hl_lightning.data.masks import LabelMasks
        >>> root = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 6)).save(root / "a.jpg")
        >>> Image.new("L", (8, 6), 2).save(root / "a.png")
        >>> data = SegmentationFiles(
        ...     [Sample("a", root / "a.jpg", (root / "a.png",))],
        ...     LabelMasks(num_classes=3, ignore_index=255),
        ...     PairedTransform(size=4, hflip=0.5),
        ... )
        >>> image, mask = data[0]
        >>> image.shape, mask.shape, mask.unique().tolist()
        (torch.Size([3, 4, 4]), torch.Size([4, 4]), [2])
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        decoder: MaskDecoder,
        transform: PairedTransform,
        on_bad: OnBad = "error",
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.decoder = decoder
        self.transform = transform
        self.on_bad = on_bad
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._generator_seed: int | None = None
        self._undecodable: set[str] = set()  # samples skipped at load, warned once each

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:
        """Return the state to pickle (for worker processes): without the generator."""
        return {**self.__dict__, "_generator": None, "_generator_seed": None}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return image (3, H, W) float32 and mask (H, W) int64 of sample ``index``.

        A file that cannot be decoded (a truncated body behind a sound header) raises
        :class:`BadDataError` naming it, or with ``on_bad="skip"`` warns once per file
        and gives the next decodable sample instead.
        """
        for offset in range(len(self.samples)):
            sample = self.samples[(index + offset) % len(self.samples)]
            try:
                image, mask = decode_sample(sample, self.decoder)
            except BadDataError as error:
                if self.on_bad == "error":
                    raise BadDataError(f"{error} (data.on_bad=skip skips such files)") from error
                if sample.name not in self._undecodable:
                    self._undecodable.add(sample.name)
                    warnings.warn(f"skipped: {error}", stacklevel=2)
                continue
            return self._transformed(sample, image, mask)
        raise BadDataError(f"none of the {len(self.samples)} samples can be decoded")

    def _transformed(
        self, sample: Sample, image: torch.Tensor, decoded: tuple[torch.Tensor, str | None]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the transformed pair; report mask values that are no label ids."""
        mask, problem = decoded
        if problem is not None:
            message = f"{sample.masks[0]}: {problem}"
            if self.on_bad == "error":
                raise BadDataError(message + " (on_bad=skip ignores such pixels)")
            warnings.warn(f"{message}; those pixels are ignored", stacklevel=2)
        return self.transform(image, mask, self._random())

    def _random(self) -> torch.Generator:
        """Return the augmentation generator of this process (a worker's own stream)."""
        info = get_worker_info()
        seed = self.seed if info is None else derive_seed(self.seed, info.seed)
        if self._generator is None or self._generator_seed != seed:
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_seed = seed
        return self._generator


def decode_sample(
    sample: Sample, decoder: MaskDecoder
) -> tuple[torch.Tensor, tuple[torch.Tensor, str | None]]:
    """Return a sample's image (3, H, W) and decoded mask with its value problem, if any;
    raise :class:`BadDataError` naming the file that cannot be decoded."""
    try:
        image = read_image(sample.image)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise BadDataError(f"{sample.image}: cannot decode the image: {error}") from error
    try:
        return image, decoder(sample.masks)
    except (OSError, UnidentifiedImageError) as error:
        raise BadDataError(f"{sample.masks[0]}: cannot decode the mask: {error}") from error


def check_sample(sample: Sample, decoder: MaskDecoder, verify: bool = False) -> str | None:
    """Return what is wrong with a sample's files, from their headers (None if usable);
    with ``verify``, from decoding every file too.

    Example:
        >>> import tempfile
        >>> from hl_lightning.data.masks import LabelMasks
        >>> root = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (8, 6)).save(root / "a.jpg")
        >>> Image.new("L", (4, 6)).save(root / "a.png")
        >>> sample = Sample("a", root / "a.jpg", (root / "a.png",))
        >>> check_sample(sample, LabelMasks(3, 255)).replace(f"{root}/", "")
        'a.png: mask size (4, 6) differs from image a.jpg size (8, 6)'
    """
    image = _header(sample.image, "image")
    if isinstance(image, str):
        return image
    if image.mode not in IMAGE_MODES:
        return f"{sample.image}: image mode {image.mode!r} is not supported (expected RGB)"
    for path in sample.masks:
        mask = _header(path, "mask", f" (for image {sample.image})")
        if isinstance(mask, str):
            return mask
        problem = decoder.check(mask)
        if problem is not None:
            return f"{path}: {problem}"
        if mask.size != image.size:
            return (
                f"{path}: mask size {mask.size} differs from image {sample.image} size {image.size}"
            )
    if verify:  # decode every pixel, not only the headers
        try:
            decode_sample(sample, decoder)
        except BadDataError as error:
            return str(error)
    return None


def _header(path: Path, what: str, missing: str = "") -> Image.Image | str:
    """Return the image file at ``path`` with its header read (size, mode; file closed),
    or what is wrong with it (``missing`` is added where the file is not found)."""
    try:
        with Image.open(path) as image:
            return image
    except FileNotFoundError:
        return f"{path}: {what} file not found{missing}"
    except (OSError, UnidentifiedImageError) as err:
        return f"{path}: cannot read the {what}: {err}"
