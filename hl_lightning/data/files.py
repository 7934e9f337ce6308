"""The base of the file-backed data modules: its shared options, set-up checks and loaders.

:class:`FileDataModule` is the base of every file-backed data module (any folder, Helen,
Mapillary Vistas, Cityscapes, COCO-Stuff, Pascal-Person-Part, LIP). A subclass gives its
class names, its tree, its layout (:mod:`hl_lightning.data.layouts`: where a split's
files lie) and, where its masks are not label-id PNGs, its mask decoder
(:mod:`hl_lightning.data.masks`); the base checks the samples at set-up (every file
exists, images and masks pair up, have usable modes and equal sizes) and serves them
through :class:`~hl_lightning.data.samples.SegmentationFiles` with paired augmentations.
Its options (:class:`FileOptions`) are shared by every subclass, which declares only its
own.

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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, TypedDict

import torch
from omegaconf import Container, OmegaConf
from typing_extensions import Unpack

from hl_lightning.data.datamodule import SegmentationDataModule
from hl_lightning.data.io import IGNORE_INDEX, BadDataError
from hl_lightning.data.layouts import Layout
from hl_lightning.data.masks import LabelMasks, MaskDecoder
from hl_lightning.data.samples import OnBad, SegmentationFiles, check_sample
from hl_lightning.data.seeds import derive_seed
from hl_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD, PairedTransform, flip_labels
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.options import OptionError

__all__ = ["FileDataModule", "FileOptions", "check_split_names", "one_of"]

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",)}
_SHOWN = 10  # problems listed in one message
_SPLITS = ("train", "val", "test")


def one_of(option: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value``; raise a ValueError naming ``option``, ``value`` and the ``choices``
    where it is none of them.

    Example:
        >>> one_of("test_split", "test", ("train", "val"))
        Traceback (most recent call last):
        ValueError: test_split must be one of train, val, got 'test'
    """
    known = tuple(choices)
    if value not in known:
        raise ValueError(f"{option} must be one of {', '.join(known)}, got {value!r}")
    return value


def check_split_names(splits: Mapping[str, object]) -> None:
    """Raise a ValueError naming the keys of ``splits`` that are not train, val or test.

    Example:
        >>> check_split_names({"train": "a.txt", "dev": "b.txt"})
        Traceback (most recent call last):
        ValueError: splits has keys train, val and test, got dev
    """
    unknown = sorted(set(splits) - set(_SPLITS))
    if unknown:
        raise ValueError(f"splits has keys train, val and test, got {', '.join(unknown)}")


def _plain(value: Any) -> Any:
    """Return Hydra/OmegaConf containers and paths as plain data (checkpoint-safe hparams)."""
    if isinstance(value, Container):
        return OmegaConf.to_container(value, resolve=True)
    return str(value) if isinstance(value, Path) else value


class FileOptions(TypedDict, total=False):
    """The options every file-backed data module takes, as keyword arguments.

    - ``image_size``: network input ``(height, width)`` or an int (square); None keeps the
      files' size (then all images of a batch must have one size).
    - ``eval_size``: the size of validation and test images: ``"image_size"`` (the
      default: as training's), None (the files' own size: whole frames at full
      resolution, for numbers comparable with published ones), or ``(height, width)``.
    - ``eval_batch_size``: images per validation and test batch; None: ``batch_size``.
      Images of different sizes cannot share a batch: 1 where the files differ in size.
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
    eval_size: int | Sequence[int] | Literal["image_size"] | None
    eval_batch_size: int | None
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

    Subclasses give the class names and tree, set :attr:`layout` (and :attr:`decoder`,
    where the masks are not label-id PNGs) in their ``__init__``, and declare their own
    option defaults (a ``defaults`` class attribute); this class takes the shared options
    (:class:`FileOptions`), checks the files at set-up and builds
    :class:`~hl_lightning.data.samples.SegmentationFiles` with the transforms.

    Class names are matched to the tree by name (:meth:`use_hierarchy`; ``hl-train``
    gives the run's tree): a class that names an internal node is a coarse class, and its
    pixels become that node's id (a coarse label); the others become their leaf's id.

    Args:
        root: the dataset folder (must exist).
        class_names: the class names: mask value ``i`` (as the data set decodes it) is class ``i``.
        hierarchy: the class tree (any leaf order), or None for the flat hierarchy.
        **options: the shared options, :class:`FileOptions`.
    """

    #: Where the files of a split lie; set by each subclass's ``__init__``.
    layout: Layout
    #: Reads a sample's mask files: label-id PNGs unless a subclass sets another.
    decoder: MaskDecoder

    #: The shared options' defaults; a subclass's ``defaults`` update them.
    defaults: ClassVar[FileOptions] = {
        "image_size": None,
        "eval_size": "image_size",
        "eval_batch_size": None,
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
        eval_size, eval_batch_size = o["eval_size"], o["eval_batch_size"]
        flip_pairs, mean, std, on_bad = o["flip_pairs"], o["mean"], o["std"], o["on_bad"]
        ignore_index, batch_size, seed = o["ignore_index"], o["batch_size"], o["seed"]
        self.root = self.data_root(root)
        one_of("on_bad", on_bad, ("error", "skip"))
        super().__init__(
            class_names,
            hierarchy,
            batch_size=batch_size,
            num_workers=o["num_workers"],
            seed=seed,
            ignore_index=ignore_index,
            pin_memory=o["pin_memory"],
            eval_batch_size=eval_batch_size,
        )
        self.on_bad = on_bad
        self.verify = o["verify"]
        self.image_size = image_size
        self._base_hparams = {
            "root": self.root,
            "image_size": image_size,
            "eval_size": eval_size,
            "eval_batch_size": eval_batch_size,
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
        if isinstance(eval_size, str) and eval_size != "image_size":
            raise OptionError(
                "eval_size",
                f"eval_size must be 'image_size', null (the files' size) or [height, width], "
                f"got {eval_size!r}",
            )
        self.eval_size = image_size if eval_size == "image_size" else eval_size
        self.eval_transform = PairedTransform(
            self.eval_size, mean=mean, std=std, ignore_index=ignore_index
        )
        self.decoder = LabelMasks(len(self.class_names), ignore_index)

    @classmethod
    def data_root(cls, root: str | Path) -> Path:
        """Return ``root`` (``~`` expanded); raise a FileNotFoundError where it is no folder.

        Example:
            >>> FileDataModule.data_root("/nowhere")
            Traceback (most recent call last):
            FileNotFoundError: FileDataModule: data root /nowhere is not a folder
        """
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise FileNotFoundError(f"{cls.__name__}: data root {folder} is not a folder")
        return folder

    def save_plain_hyperparameters(self, **hparams: Any) -> None:
        """Save the common arguments and ``hparams`` as plain data (for loggers; checkpoints
        holding them load with ``weights_only``)."""
        merged = {**self._base_hparams, **hparams}
        self.save_hyperparameters({key: _plain(value) for key, value in merged.items()})

    def setup(self, stage: str) -> None:
        """Check and load the splits ``stage`` needs: fit: train, val; validate: val; test."""
        for split in _STAGE_SPLITS.get(stage, ()):
            self.setup_split(split)

    def setup_split(self, split: str) -> SegmentationFiles:
        """Return the checked dataset of ``split``, loaded once (that split alone)."""
        if getattr(self, f"{split}_dataset") is None:
            setattr(self, f"{split}_dataset", self.split_dataset(split))
        return getattr(self, f"{split}_dataset")

    def split_dataset(self, split: str) -> SegmentationFiles:
        """Return the checked dataset of ``split`` (raise or skip bad samples per ``on_bad``)."""
        samples, problems = self.layout.list_split(split)
        usable = []
        for sample in samples:
            problem = check_sample(sample, self.decoder, self.verify)
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
        label_ids = self.label_ids  # class i's node id: itself unless a class is coarse
        identity = torch.equal(label_ids, torch.arange(len(label_ids)))
        return SegmentationFiles(
            usable,
            self.decoder,
            self.train_transform if train else self.eval_transform,
            on_bad=self.on_bad,
            seed=derive_seed(self.seed, "augment", split),
            label_ids=None if identity else label_ids,
        )
