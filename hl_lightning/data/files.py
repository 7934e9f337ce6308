"""The base of the file-backed data modules: list a split's samples, check them, serve them.

:class:`FileDataModule` is the base of every file-backed data module (any folder, Helen,
Mapillary Vistas, Cityscapes, COCO-Stuff, Pascal-Person-Part, LIP): it lists a split's
samples, checks them at set-up (every file exists, images and masks pair up, have usable
modes and equal sizes), and serves them through :class:`SegmentationFiles` with paired
augmentations. Its options (:class:`FileOptions`) are shared by every subclass, which
declares only its own.

Bad data (``on_bad``): with ``"error"`` (the default) a problem raises
:class:`~hl_lightning.data.io.BadDataError` naming the file; with ``"skip"`` the samples
with problems found at set-up are dropped with one warning that counts them, and mask
pixels whose values are not label ids nor the ignore value become ignored, with a warning
naming the file. Missing roots, splits and class lists always raise. Images are converted
to RGB (an alpha channel is dropped, greyscale and palette images are expanded); other
modes (16-bit, float) are bad data.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypedDict

import torch
from omegaconf import Container, OmegaConf
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, get_worker_info
from typing_extensions import Unpack

from hl_lightning.data.datamodule import SegmentationDataModule
from hl_lightning.data.io import IGNORE_INDEX, IMAGE_MODES, BadDataError, MaskDecoder, read_image
from hl_lightning.data.seeds import derive_seed
from hl_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PairedTransform, flip_labels
from hl_lightning.hierarchy import Hierarchy

__all__ = [
    "FileDataModule",
    "FileOptions",
    "OnBad",
    "Sample",
    "SegmentationFiles",
    "decode_sample",
    "list_files",
    "pair_by_stem",
]

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
_SHOWN = 10  # problems listed in one message

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
        >>> from hl_lightning.data.io import LabelMasks
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


def _check_sample(sample: Sample, decoder: MaskDecoder, verify: bool = False) -> str | None:
    """Return what is wrong with a sample's files, from their headers (None if usable)."""
    try:
        with Image.open(sample.image) as image:
            size, mode = image.size, image.mode
    except FileNotFoundError:
        return f"{sample.image}: image file not found"
    except (OSError, UnidentifiedImageError) as err:
        return f"{sample.image}: cannot read the image: {err}"
    if mode not in IMAGE_MODES:
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
    if verify:  # decode every pixel, not only the headers
        try:
            decode_sample(sample, decoder)
        except BadDataError as error:
            return str(error)
    return None


def _plain(value: Any) -> Any:
    """Return Hydra/OmegaConf containers and paths as plain data (checkpoint-safe hparams)."""
    if isinstance(value, Container):
        return OmegaConf.to_container(value, resolve=True)
    return str(value) if isinstance(value, Path) else value


class FileOptions(TypedDict, total=False):
    """The options every file-backed data module takes, as keyword arguments.

    - ``image_size``: network input ``(height, width)`` or an int (square); None keeps the
      files' size (then all images of a batch must have one size).
    - ``scale``: range of the random scale factor of training images (a factor above 1
      crops a random ``image_size`` window: random crop).
    - ``hflip``: probability of a horizontal flip of training images.
    - ``flip_pairs``: pairs of class names swapped by a flip (``[[left_eye, right_eye]]``).
    - ``mean``, ``std``: per-channel normalisation of the [0, 1] RGB images.
    - ``on_bad``: ``"error"`` or ``"skip"`` (see the module documentation).
    - ``ignore_index``: mask value of unlabelled pixels.
    - ``verify``: decode every file at set-up (slower), not only the headers, so that a
      truncated file is found before training rather than when it is loaded.
    - ``batch_size``, ``num_workers``, ``seed``, ``pin_memory``: as in
      :class:`~hl_lightning.data.datamodule.SegmentationDataModule`.

    Defaults: :attr:`FileDataModule.defaults`, updated by each subclass's ``defaults``.
    """

    image_size: int | Sequence[int] | None
    scale: Sequence[float]
    hflip: float
    flip_pairs: Sequence[Sequence[str]]
    mean: Sequence[float]
    std: Sequence[float]
    on_bad: OnBad
    ignore_index: int
    verify: bool
    batch_size: int
    num_workers: int
    seed: int
    pin_memory: bool


class FileDataModule(SegmentationDataModule):
    """Base of the data modules over image and mask files under a dataset ``root``.

    Subclasses give the class names, a mask decoder and :meth:`list_split`, and their own
    option defaults (a ``defaults`` class attribute); this class takes the shared options
    (:class:`FileOptions`), checks the files at set-up and builds
    :class:`SegmentationFiles` with the transforms.

    Args:
        root: the dataset folder (must exist).
        class_names: the K class names in label-id order.
        hierarchy: the class tree (any leaf order), or None for the flat hierarchy.
        **options: the shared options, :class:`FileOptions`.
    """

    #: The shared options' defaults; a subclass's ``defaults`` update them.
    defaults: ClassVar[FileOptions] = {
        "image_size": None,
        "scale": (1.0, 1.0),
        "hflip": 0.0,
        "flip_pairs": (),
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "on_bad": "error",
        "ignore_index": IGNORE_INDEX,
        "verify": False,
        "batch_size": 16,
        "num_workers": 0,
        "seed": 0,
        "pin_memory": False,
    }

    def __init__(
        self,
        root: str | Path,
        class_names: Sequence[str],
        hierarchy: Hierarchy | None = None,
        **options: Unpack[FileOptions],
    ) -> None:
        unknown = sorted(set(options) - set(FileOptions.__annotations__))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown options {', '.join(unknown)}; the shared "
                f"options are {', '.join(FileOptions.__annotations__)}"
            )
        o: FileOptions = {**FileDataModule.defaults, **type(self).defaults, **options}
        image_size, scale, hflip = o["image_size"], o["scale"], o["hflip"]
        flip_pairs, mean, std, on_bad = o["flip_pairs"], o["mean"], o["std"], o["on_bad"]
        ignore_index, batch_size, seed = o["ignore_index"], o["batch_size"], o["seed"]
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
            num_workers=o["num_workers"],
            seed=seed,
            ignore_index=ignore_index,
            pin_memory=o["pin_memory"],
        )
        self.on_bad = on_bad
        self.verify = o["verify"]
        self.image_size = image_size
        self._base_hparams = {
            "root": self.root,
            "image_size": image_size,
            "scale": scale,
            "hflip": hflip,
            "flip_pairs": flip_pairs,
            "mean": mean,
            "std": std,
            "on_bad": on_bad,
            "verify": self.verify,
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
            problem = _check_sample(sample, self.decoder, self.verify)
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
