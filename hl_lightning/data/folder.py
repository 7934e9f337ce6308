"""Datasets of image and mask files: a folder of images and label PNGs, and the shared machinery.

:class:`FileDataModule` is the base of every file-backed data module (this folder one,
Helen, Mapillary Vistas, Cityscapes): it lists a split's samples, checks them at set-up
(every file exists, images and masks pair up, have usable modes and equal sizes), and
serves them through :class:`SegmentationFiles` with paired augmentations.

Bad data (``on_bad``): with ``"error"`` (the default) a problem raises
:class:`BadDataError` naming the file; with ``"skip"`` the samples with problems found at
set-up are dropped with one warning that counts them, and mask pixels whose values are
not label ids nor the ignore value become ignored, with a warning naming the file.
Missing roots, splits and class lists always raise. Images are converted to RGB (an alpha
channel is dropped, greyscale and palette images are expanded); other modes (16-bit,
float) are bad data.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from omegaconf import Container, OmegaConf
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, get_worker_info

from hl_lightning.data.datamodule import SegmentationDataModule
from hl_lightning.data.synthetic import IGNORE_INDEX, derive_seed
from hl_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PairedTransform, flip_labels
from hl_lightning.hierarchy import Hierarchy

__all__ = [
    "IMAGE_SUFFIXES",
    "BadDataError",
    "ColourMasks",
    "FileDataModule",
    "FolderDataModule",
    "LabelMasks",
    "MaskDecoder",
    "OnBad",
    "Sample",
    "SegmentationFiles",
    "UnknownColour",
    "list_files",
    "pair_by_stem",
    "pixels",
    "read_class_names",
    "read_image",
    "read_label_map",
]

#: File suffixes read as images (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_IMAGE_MODES = {"RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"}
_LABEL_MODES = {"L", "P", "I", "I;16", "I;16L", "I;16B", "1"}
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
_SHOWN = 10  # problems listed in one message

#: What bad data does: raise (``"error"``) or drop / ignore it with a warning (``"skip"``).
OnBad = Literal["error", "skip"]
#: What a mask colour not in the palette does: raise or become ignored.
UnknownColour = Literal["error", "ignore"]


class BadDataError(ValueError):
    """A data file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class Sample:
    """One image and its mask file(s): one label map, or several (e.g. one per class)."""

    name: str
    image: Path
    masks: tuple[Path, ...]


class MaskDecoder(Protocol):
    """Turns a sample's mask files into a label map (H, W) int64."""

    def check(self, mask: Image.Image) -> str | None:
        """Return what is wrong with a mask file's mode (None if usable), from its header."""

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 and a problem with its values (None if none).

        Pixels with bad values are set to the ignore value; the problem says which.
        """


def pixels(image: Image.Image, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """Return the pixel data (H, W) or (H, W, C) of a PIL image, as ``dtype`` (no numpy).

    Example:
        >>> pixels(Image.new("RGB", (3, 2), (1, 2, 3))).shape
        torch.Size([2, 3, 3])
    """
    width, height = image.size
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=dtype)
    return data.view(height, width, -1).squeeze(-1)


def read_image(path: str | Path) -> torch.Tensor:
    """Return the RGB image (3, H, W) uint8 at ``path`` (alpha dropped, grey expanded).

    Raises :class:`BadDataError` naming the file for unreadable files and for modes
    without an RGB reading (16-bit or float images).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "grey.png"
        >>> Image.new("L", (4, 2), 7).save(path)
        >>> image = read_image(path)
        >>> image.shape, image.dtype, image[:, 0, 0].tolist()
        (torch.Size([3, 2, 4]), torch.uint8, [7, 7, 7])
    """
    try:
        with Image.open(path) as image:
            if image.mode not in _IMAGE_MODES:
                raise BadDataError(
                    f"{path}: image mode {image.mode!r} is not supported (expected RGB; RGBA, "
                    "greyscale and palette images are converted)"
                )
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise BadDataError(f"{path}: cannot read the image: {err}") from err
    return pixels(rgb).permute(2, 0, 1).contiguous()


def read_label_map(path: str | Path) -> torch.Tensor:
    """Return the integer label map (H, W) int64 stored at ``path``.

    Reads 8-bit (``L``), palette (``P``: the palette indices are the labels), 16- and
    32-bit integer PNGs; a colour (RGB) file raises :class:`BadDataError` naming it.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "mask.png"
        >>> Image.new("I;16", (4, 2), 300).save(path)
        >>> mask = read_label_map(path)
        >>> mask.shape, mask.dtype, mask[0, 0].item()
        (torch.Size([2, 4]), torch.int64, 300)
    """
    try:
        with Image.open(path) as image:
            if image.mode not in _LABEL_MODES:
                raise BadDataError(
                    f"{path}: mask mode {image.mode!r} holds colours, not integer label ids "
                    "(read colour-coded masks with a palette)"
                )
            if image.mode in ("L", "P"):
                return pixels(image).long()
            if image.mode == "1":
                return pixels(image.convert("L")).long() // 255
            return pixels(image.convert("I"), torch.int32).long()
    except (OSError, UnidentifiedImageError) as err:
        raise BadDataError(f"{path}: cannot read the mask: {err}") from err


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Return the class names listed in a text file, one a line (blank lines and ``#`` skipped).

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "classes.txt"
        >>> _ = file.write_text("# label order\\nsky\\n\\ncar\\n")
        >>> read_class_names(file)
        ('sky', 'car')
    """
    return _read_lines(path, "class names")


def _read_lines(path: str | Path, what: str) -> tuple[str, ...]:
    """Return the non-blank lines of a text file without ``#`` comments; raise if none."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise FileNotFoundError(f"cannot read the {what} file {path}: {err.strerror}") from err
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    names = tuple(line for line in lines if line)
    if not names:
        raise ValueError(f"{path}: no {what} (one a line)")
    return names


def _value_problem(mask: torch.Tensor, num_classes: int, ignore_index: int) -> str | None:
    """Return a description of the values of ``mask`` that are neither labels nor ignored."""
    bad = ((mask < 0) | (mask >= num_classes)) & (mask != ignore_index)
    if not bad.any():
        return None
    values = mask[bad].unique().tolist()
    shown = ", ".join(str(v) for v in values[:_SHOWN]) + (", ..." if len(values) > _SHOWN else "")
    return (
        f"{int(bad.sum())} pixels with values {shown}, which are neither label ids "
        f"0-{num_classes - 1} nor the ignore value {ignore_index}"
    )


class LabelMasks:
    """Decode integer label-map files whose values are label ids (or the ignore value).

    Example:
        >>> decoder = LabelMasks(num_classes=3, ignore_index=255)
        >>> decoder.check(Image.new("RGB", (4, 4))) is not None  # a colour file is refused
        True
    """

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def check(self, mask: Image.Image) -> str | None:
        """Return the problem of a colour (non-integer) mask mode, or None."""
        if mask.mode in _LABEL_MODES:
            return None
        return (
            f"mask mode {mask.mode!r} holds colours, not integer label ids (read colour-coded "
            "masks with a palette)"
        )

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 of the one file, with bad values ignored."""
        mask = read_label_map(paths[0])
        problem = _value_problem(mask, self.num_classes, self.ignore_index)
        if problem is not None:
            bad = ((mask < 0) | (mask >= self.num_classes)) & (mask != self.ignore_index)
            mask = mask.masked_fill(bad, self.ignore_index)
        return mask, problem


class ColourMasks:
    """Decode colour-coded (RGB) masks with a colour table: colour -> label id.

    Args:
        colours: label id of every colour ``(r, g, b)``.
        ignore_index: label of ignored pixels.
        unknown: ``"error"``: a colour not in the table is a problem naming it;
            ``"ignore"``: such pixels are ignored silently.

    Example:
        >>> decoder = ColourMasks({(0, 0, 255): 0, (255, 0, 0): 1}, ignore_index=255)
        >>> decoder.check(Image.new("L", (4, 4))) is not None  # greyscale: no colours
        True
    """

    def __init__(
        self,
        colours: Mapping[tuple[int, int, int], int],
        ignore_index: int,
        unknown: UnknownColour = "error",
    ) -> None:
        if unknown not in ("error", "ignore"):
            raise ValueError(f"unknown_colour must be 'error' or 'ignore', got {unknown!r}")
        self.codes = {(r << 16) | (g << 8) | b: label for (r, g, b), label in colours.items()}
        self.ignore_index = ignore_index
        self.unknown = unknown

    def check(self, mask: Image.Image) -> str | None:
        """Return the problem of a mask without colours (greyscale, integer), or None."""
        if mask.mode in ("RGB", "RGBA", "RGBX", "P", "PA"):
            return None
        return f"mask mode {mask.mode!r} has no colours, but a palette was given"

    def __call__(self, paths: tuple[Path, ...]) -> tuple[torch.Tensor, str | None]:
        """Return the label map (H, W) int64 of the one colour file."""
        path = paths[0]
        try:
            with Image.open(path) as image:
                rgb = pixels(image.convert("RGB")).long()
        except (OSError, UnidentifiedImageError) as err:
            raise BadDataError(f"{path}: cannot read the mask: {err}") from err
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        unique, inverse = codes.unique(return_inverse=True)
        labels = torch.tensor([self.codes.get(int(c), -1) for c in unique.tolist()])
        mask = labels[inverse]
        unknown = [int(c) for c in unique[labels < 0].tolist()]
        mask = mask.masked_fill(mask < 0, self.ignore_index)
        if not unknown or self.unknown == "ignore":
            return mask, None
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:_SHOWN])
        more = ", ..." if len(unknown) > _SHOWN else ""
        return mask, f"colours {shown}{more} are not in the palette"


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

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:
        """Return the state to pickle (for worker processes): without the generator."""
        return {**self.__dict__, "_generator": None, "_generator_seed": None}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return image (3, H, W) float32 and mask (H, W) int64 of sample ``index``."""
        sample = self.samples[index]
        image = read_image(sample.image)
        mask, problem = self.decoder(sample.masks)
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


def _check_sample(sample: Sample, decoder: MaskDecoder) -> str | None:
    """Return what is wrong with a sample's files, from their headers (None if usable)."""
    try:
        with Image.open(sample.image) as image:
            size, mode = image.size, image.mode
    except FileNotFoundError:
        return f"{sample.image}: image file not found"
    except (OSError, UnidentifiedImageError) as err:
        return f"{sample.image}: cannot read the image: {err}"
    if mode not in _IMAGE_MODES:
        return f"{sample.image}: image mode {mode!r} is not supported (expected RGB)"
    for path in sample.masks:
        try:
            with Image.open(path) as mask:
                problem = decoder.check(mask)
                mask_size = mask.size
        except FileNotFoundError:
            return f"{path}: mask file not found (for image {sample.image})"
        except (OSError, UnidentifiedImageError) as err:
            return f"{path}: cannot read the mask: {err}"
        if problem is not None:
            return f"{path}: {problem}"
        if mask_size != size:
            return f"{path}: mask size {mask_size} differs from image {sample.image} size {size}"
    return None


def _plain(value: Any) -> Any:
    """Return Hydra/OmegaConf containers and paths as plain data (checkpoint-safe hparams)."""
    if isinstance(value, Container):
        return OmegaConf.to_container(value, resolve=True)
    return str(value) if isinstance(value, Path) else value


class FileDataModule(SegmentationDataModule):
    """Base of the data modules over image and mask files under a dataset ``root``.

    Subclasses give the class names, a mask decoder and :meth:`list_split`; this class
    checks the files at set-up and builds :class:`SegmentationFiles` with the transforms.

    Args:
        root: the dataset folder (must exist).
        class_names: the K class names in label-id order.
        hierarchy: the class tree (any leaf order), or None for the flat hierarchy.
        image_size: network input ``(height, width)`` or an int (square); None keeps the
            files' size (then all images of a batch must have one size).
        scale: range of the random scale factor of training images (a factor above 1
            crops a random ``image_size`` window: random crop).
        hflip: probability of a horizontal flip of training images.
        flip_pairs: pairs of class names swapped by a flip (``[[left_eye, right_eye]]``).
        mean, std: per-channel normalisation of the [0, 1] RGB images.
        on_bad: ``"error"`` or ``"skip"`` (see the module documentation).
        ignore_index: mask value of unlabelled pixels.
        batch_size, num_workers, seed, pin_memory: as in :class:`SegmentationDataModule`.
    """

    def __init__(
        self,
        root: str | Path,
        class_names: Sequence[str],
        hierarchy: Hierarchy | None = None,
        image_size: int | Sequence[int] | None = None,
        scale: Sequence[float] = (1.0, 1.0),
        hflip: float = 0.0,
        flip_pairs: Sequence[Sequence[str]] = (),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        on_bad: OnBad = "error",
        ignore_index: int = IGNORE_INDEX,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{type(self).__name__}: data root {self.root} is not a folder")
        if on_bad not in ("error", "skip"):
            raise ValueError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
        if 0 <= ignore_index < len(class_names):
            raise ValueError(
                f"ignore_index {ignore_index} is a label id (there are {len(class_names)} classes)"
            )
        super().__init__(
            class_names,
            hierarchy,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            ignore_index=ignore_index,
            pin_memory=pin_memory,
        )
        self.on_bad = on_bad
        self._base_hparams = {
            "root": self.root,
            "image_size": image_size,
            "scale": scale,
            "hflip": hflip,
            "flip_pairs": flip_pairs,
            "mean": mean,
            "std": std,
            "on_bad": on_bad,
            "ignore_index": ignore_index,
            "batch_size": batch_size,
            "seed": seed,
        }
        flips = flip_labels(self.class_names, flip_pairs) if flip_pairs else None
        self.train_transform = PairedTransform(
            image_size, scale, hflip, flips, mean, std, ignore_index
        )
        self.eval_transform = PairedTransform(
            image_size, mean=mean, std=std, ignore_index=ignore_index
        )

    def save_plain_hyperparameters(self, **hparams: Any) -> None:
        """Save the common arguments and ``hparams`` as plain data (for loggers; checkpoints
        holding them load with ``weights_only``)."""
        merged = {**self._base_hparams, **hparams}
        self.save_hyperparameters({key: _plain(value) for key, value in merged.items()})

    @property
    def decoder(self) -> MaskDecoder:
        """The decoder of this dataset's mask files."""
        raise NotImplementedError

    def list_split(self, split: str) -> tuple[list[Sample], list[str]]:
        """Return the samples of ``split`` (train, val, test) and the pairing problems found.

        Raise FileNotFoundError when the split itself is missing.
        """
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        """Check and load the splits ``stage`` needs: fit: train, val; validate: val; test."""
        for split in _STAGE_SPLITS.get(stage, ()):
            if getattr(self, f"{split}_dataset") is None:
                setattr(self, f"{split}_dataset", self.split_dataset(split))

    def split_dataset(self, split: str) -> SegmentationFiles:
        """Return the checked dataset of ``split`` (raise or skip bad samples per ``on_bad``)."""
        samples, problems = self.list_split(split)
        usable = []
        for sample in samples:
            problem = _check_sample(sample, self.decoder)
            if problem is None:
                usable.append(sample)
            else:
                problems.append(problem)
        where = f"{type(self).__name__} {split} split under {self.root}"
        if problems:
            shown = "\n  ".join(problems[:_SHOWN])
            more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
            if self.on_bad == "error":
                raise BadDataError(
                    f"{len(problems)} bad samples in the {where} (on_bad=skip drops them):\n"
                    f"  {shown}{more}"
                )
            warnings.warn(
                f"skipped {len(problems)} bad samples in the {where} ({len(usable)} left):\n"
                f"  {shown}{more}",
                stacklevel=2,
            )
        if not usable:
            raise BadDataError(f"no usable samples in the {where}")
        train = split == "train"
        return SegmentationFiles(
            usable,
            self.decoder,
            self.train_transform if train else self.eval_transform,
            on_bad=self.on_bad,
            seed=derive_seed(self.seed, "augment", split),
        )


def pair_by_stem(
    images: Sequence[Path],
    masks: Sequence[Path],
    image_root: Path,
    mask_root: Path,
    endings: tuple[str, str] | None = None,
) -> tuple[list[Sample], list[str]]:
    """Return the samples of images and masks with equal names; unpaired files as problems.

    A file's name is its path relative to its root without the suffix, or without the
    given ``endings`` (image ending, mask ending: ``("_leftImg8bit.png",
    "_gtFine_labelIds.png")``), which the files must have. Several files of one name
    are problems too.

    Example:
        >>> im, lb = Path("/data/im"), Path("/data/lb")
        >>> samples, problems = pair_by_stem([im / "a.jpg", im / "b.jpg"], [lb / "a.png"], im, lb)
        >>> [s.name for s in samples], problems
        (['a'], ['/data/im/b.jpg: no mask /data/lb/b.* for this image'])
    """
    image_ending, mask_ending = endings or (".*", ".*")

    def by_name(paths: Sequence[Path], root: Path, ending: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in sorted(paths):
            relative = path.relative_to(root)
            if endings is None:
                name = relative.with_suffix("").as_posix()
            else:
                name = relative.as_posix().removesuffix(ending)
            if name in found:
                problems.append(f"{path}: same name as {found[name]} (one file a name)")
            else:
                found[name] = path
        return found

    problems: list[str] = []
    image_by_name = by_name(images, image_root, image_ending)
    mask_by_name = by_name(masks, mask_root, mask_ending)
    samples = []
    for name, image in image_by_name.items():
        mask = mask_by_name.get(name)
        if mask is None:
            problems.append(f"{image}: no mask {mask_root / name}{mask_ending} for this image")
        else:
            samples.append(Sample(name, image, (mask,)))
    problems += [
        f"{mask}: no image {image_root / name}{image_ending} for this mask"
        for name, mask in mask_by_name.items()
        if name not in image_by_name
    ]
    return samples, problems


def list_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Return the files under ``folder`` (recursively) whose suffix is one of ``suffixes``.

    Suffixes compare case-insensitively (``.JPG`` is a ``.jpg``).
    """
    wanted = {s.lower() for s in suffixes}
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted]


class FolderDataModule(FileDataModule):
    """Any folder of images and masks: integer label PNGs, or colour-coded with a palette.

    Layout, either split subfolders::

        root/images/train/<name>.jpg   root/labels/train/<name>.png
        root/images/val/...            root/labels/val/...
        root/images/test/...           root/labels/test/...

    or flat folders with split files listing the names (one a line, without suffix)::

        root/images/<name>.jpg   root/labels/<name>.png   root/train.txt   root/val.txt ...

    An image pairs with the mask of the same name (the path below the split folder,
    without suffix; subfolders allowed). ``splits`` maps train/val/test to a subfolder
    name, or to a split file (``*.txt``, relative to ``root``); a split that is neither
    raises at set-up, and a split mapped to None cannot be set up.

    Masks hold label ids (8/16-bit or palette-index PNGs; values are ``class_names``
    indices or ``ignore_index``), or, with ``palette``, colours: a mapping class name ->
    ``[r, g, b]``; a colour not in it is an error naming the file and the colour, or
    ignored with ``unknown_colour="ignore"``.

    Args:
        root: the dataset folder.
        class_names: the class names in label-id order, or a text file of them (one a
            line, relative to ``root``); None: the palette's names, in its order.
        palette: class name -> ``[r, g, b]`` for colour-coded masks (None: label ids).
        unknown_colour: ``"error"`` or ``"ignore"``: what a colour not in the palette does.
        hierarchy: the class tree: a :class:`Hierarchy` or a tree file (text or YAML,
            relative to the launch directory); None: flat.
        image_dir, mask_dir: the image and mask folders under ``root``.
        splits: train/val/test -> subfolder name or split file.
        ignore_index, image_size, scale, hflip, flip_pairs, mean, std, on_bad, batch_size,
            num_workers, seed, pin_memory: as in :class:`FileDataModule`.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for split in ("train", "val"):
        ...     for sub in ("images", "labels"):
        ...         (root / sub / split).mkdir(parents=True)
        ...     Image.new("RGB", (8, 6)).save(root / "images" / split / "a.jpg")
        ...     Image.new("L", (8, 6), 1).save(root / "labels" / split / "a.png")
        >>> dm = FolderDataModule(root, class_names=["sky", "car"], image_size=4, batch_size=1)
        >>> dm.setup("fit")
        >>> images, masks = next(iter(dm.train_dataloader()))
        >>> images.shape, masks.unique().tolist()
        (torch.Size([1, 3, 4, 4]), [1])
    """

    def __init__(
        self,
        root: str | Path,
        class_names: Sequence[str] | str | Path | None = None,
        palette: Mapping[str, Sequence[int]] | None = None,
        unknown_colour: UnknownColour = "error",
        hierarchy: Hierarchy | str | Path | None = None,
        image_dir: str = "images",
        mask_dir: str = "labels",
        splits: Mapping[str, str | None] | None = None,
        ignore_index: int = IGNORE_INDEX,
        image_size: int | Sequence[int] | None = None,
        scale: Sequence[float] = (1.0, 1.0),
        hflip: float = 0.0,
        flip_pairs: Sequence[Sequence[str]] = (),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        on_bad: OnBad = "error",
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ) -> None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"FolderDataModule: data root {root} is not a folder")
        names = self._resolve_class_names(root, class_names, palette)
        tree = Hierarchy.from_file(hierarchy) if isinstance(hierarchy, str | Path) else hierarchy
        super().__init__(
            root,
            names,
            tree,
            image_size=image_size,
            scale=scale,
            hflip=hflip,
            flip_pairs=flip_pairs,
            mean=mean,
            std=std,
            on_bad=on_bad,
            ignore_index=ignore_index,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            pin_memory=pin_memory,
        )
        self.save_plain_hyperparameters(class_names=names, palette=palette, splits=splits)
        self.image_dir = self.root / image_dir
        self.mask_dir = self.root / mask_dir
        self.splits = dict(splits or {"train": "train", "val": "val", "test": "test"})
        unknown = sorted(set(self.splits) - set(_STAGE_SPLITS["fit"]) - {"test"})
        if unknown:
            raise ValueError(f"splits has keys train, val and test, got {', '.join(unknown)}")
        self._decoder: MaskDecoder
        if palette is None:
            self._decoder = LabelMasks(self.num_classes, ignore_index)
        else:
            self._decoder = ColourMasks(self._colours(palette), ignore_index, unknown_colour)

    @staticmethod
    def _resolve_class_names(
        root: Path,
        class_names: Sequence[str] | str | Path | None,
        palette: Mapping[str, Sequence[int]] | None,
    ) -> tuple[str, ...]:
        """Return the class names: given, read from a file under ``root``, or the palette's."""
        if class_names is None:
            if palette is None:
                raise ValueError(
                    "FolderDataModule needs class_names (a list or a file) or a palette"
                )
            return tuple(str(name) for name in palette)
        if isinstance(class_names, str | Path):
            return read_class_names(root / class_names)
        return tuple(str(name) for name in class_names)

    def _colours(self, palette: Mapping[str, Sequence[int]]) -> dict[tuple[int, int, int], int]:
        """Return colour -> label id of the palette (class name -> [r, g, b]), checked."""
        ids = {name: i for i, name in enumerate(self.class_names)}
        colours: dict[tuple[int, int, int], int] = {}
        for name, colour in palette.items():
            rgb = tuple(int(c) for c in colour)
            if str(name) not in ids:
                raise ValueError(f"palette: {name!r} is not a class name ({', '.join(ids)})")
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ValueError(f"palette: {name!r} needs [r, g, b] in 0-255, got {list(colour)}")
            if rgb in colours:
                other = self.class_names[colours[rgb]]
                raise ValueError(f"palette: {name!r} and {other!r} share the colour {list(rgb)}")
            colours[rgb] = ids[str(name)]
        return colours

    @property
    def decoder(self) -> MaskDecoder:
        """Label-map or colour decoder, as configured."""
        return self._decoder

    def list_split(self, split: str) -> tuple[list[Sample], list[str]]:
        """Return the samples of ``split`` from its subfolders or its split file."""
        name = self.splits.get(split)
        if name is None:
            raise FileNotFoundError(f"FolderDataModule: no {split} split configured (splits)")
        for folder in (self.image_dir, self.mask_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"FolderDataModule: no folder {folder}")
        images_in, masks_in = self.image_dir / name, self.mask_dir / name
        split_file = self.root / name
        if not name.endswith(".txt") and images_in.is_dir():
            if not masks_in.is_dir():
                raise FileNotFoundError(
                    f"FolderDataModule: {images_in} has no mask folder {masks_in}"
                )
            images = list_files(images_in, IMAGE_SUFFIXES)
            masks = list_files(masks_in, IMAGE_SUFFIXES)
            return pair_by_stem(images, masks, images_in, masks_in)
        if not name.endswith(".txt"):
            split_file = self.root / f"{name}.txt"
        if not split_file.is_file():
            raise FileNotFoundError(
                f"FolderDataModule: no {split} split: neither a folder {images_in} nor a split "
                f"file {split_file}"
            )
        stems = _read_lines(split_file, "sample names")
        suffixes = {s.lower() for s in IMAGE_SUFFIXES}
        images = [p for s in stems for p in self.image_dir.glob(f"{s}.*")]
        masks = [p for s in stems for p in self.mask_dir.glob(f"{s}.*")]
        images = [p for p in images if p.suffix.lower() in suffixes]
        masks = [p for p in masks if p.suffix.lower() in suffixes]
        samples, problems = pair_by_stem(images, masks, self.image_dir, self.mask_dir)
        present = {
            path.relative_to(folder).with_suffix("").as_posix()
            for folder, paths in ((self.image_dir, images), (self.mask_dir, masks))
            for path in paths
        }
        problems += [
            f"{split_file}: lists {stem!r}, but {self.image_dir} has no image of that name"
            for stem in stems
            if stem not in present
        ]
        return samples, problems
