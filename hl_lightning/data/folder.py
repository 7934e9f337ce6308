"""Any folder of images and label masks: ``images/{train,val,test}`` + ``labels/{...}``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from typing_extensions import Unpack

from hl_lightning.data.files import FileDataModule, FileOptions, check_split_names
from hl_lightning.data.io import IMAGE_SUFFIXES, read_class_names, read_lines
from hl_lightning.data.layouts import PairedFolders, pair_by_stem, require_folders
from hl_lightning.data.masks import ColourMasks, UnknownColour
from hl_lightning.data.samples import Sample
from hl_lightning.hierarchy import Hierarchy

__all__ = ["FolderDataModule", "FolderSplits"]


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
        **options: the shared options (``image_size``, ``scale``, ``hflip``, ``flip_pairs``,
            ``mean``, ``std``, ``on_bad``, ``ignore_index``, ``batch_size``, ...):
            :class:`~hl_lightning.data.files.FileOptions`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
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
        **options: Unpack[FileOptions],
    ) -> None:
        names = self._resolve_class_names(self.data_root(root), class_names, palette)
        tree = Hierarchy.from_file(hierarchy) if isinstance(hierarchy, str | Path) else hierarchy
        super().__init__(root, names, tree, **options)
        self.save_plain_hyperparameters(class_names=names, palette=palette, splits=splits)
        self.image_dir = self.root / image_dir
        self.mask_dir = self.root / mask_dir
        self.splits = dict(splits or {"train": "train", "val": "val", "test": "test"})
        check_split_names(self.splits)
        self.layout = FolderSplits(self.root, self.image_dir, self.mask_dir, self.splits)
        if palette is not None:
            self.decoder = ColourMasks(self._colours(palette), self.ignore_index, unknown_colour)

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


@dataclass(frozen=True)
class FolderSplits:
    """The layout of :class:`FolderDataModule`: each split a subfolder, or a split file.

    A split named ``name`` is the subfolders ``image_dir/name`` and ``mask_dir/name``
    (images pair with the masks of their names), or, where there is no such image folder
    or the name ends in ``.txt``, the split file ``root/name`` (``.txt`` added) listing
    sample names under ``image_dir`` and ``mask_dir``.

    Example:
        >>> layout = FolderSplits(Path("/d"), Path("/d/images"), Path("/d/labels"), {"train": None})
        >>> layout.list_split("train")
        Traceback (most recent call last):
        FileNotFoundError: FolderDataModule: no train split configured (splits)
    """

    root: Path
    image_dir: Path
    mask_dir: Path
    splits: Mapping[str, str | None]

    def list_split(self, split: str) -> tuple[list[Sample], list[str]]:
        """Return the samples of ``split`` from its subfolders or its split file."""
        name = self.splits.get(split)
        if name is None:
            raise FileNotFoundError(f"FolderDataModule: no {split} split configured (splits)")
        require_folders("FolderDataModule", split, (self.image_dir, self.mask_dir))
        images_in, masks_in = self.image_dir / name, self.mask_dir / name
        if not name.endswith(".txt") and images_in.is_dir():
            folders = PairedFolders(
                "FolderDataModule", {split: (images_in, masks_in)}, IMAGE_SUFFIXES, IMAGE_SUFFIXES
            )
            return folders.list_split(split)
        split_file = self.root / (name if name.endswith(".txt") else f"{name}.txt")
        if not split_file.is_file():
            raise FileNotFoundError(
                f"FolderDataModule: no {split} split: neither a folder {images_in} nor a split "
                f"file {split_file}"
            )
        stems = read_lines(split_file, "sample names")
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
