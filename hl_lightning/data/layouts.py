"""Where a data set's files lie: the layouts that list the samples of a split.

A layout (:class:`Layout`) lists the samples of a split with the problems found pairing
its files (an image without a mask, a mask without an image), and raises a
FileNotFoundError naming a missing split folder or list. Two layouts serve every
file-backed data set:

- :class:`PairedFolders`: each split an image folder and a mask folder, and an image
  pairs with the mask of its name (LIP, Cityscapes, COCO-Stuff, Mapillary Vistas, any
  folder);
- :class:`ListedSamples`: each split a list of sample ids, and an id's image and mask
  files at fixed places (Helen, Pascal-Person-Part).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hl_lightning.data.io import read_lines
from hl_lightning.data.samples import Sample

__all__ = [
    "Layout",
    "ListedSamples",
    "PairedFolders",
    "list_files",
    "pair_by_stem",
    "read_id_list",
    "require_folders",
]


class Layout(Protocol):
    """Lists the samples of a split (train, val, test)."""

    def list_split(self, split: str) -> tuple[list[Sample], list[str]]:
        """Return the samples of ``split`` and the pairing problems found; raise
        FileNotFoundError where the split's folders or list are missing."""


def require_folders(
    owner: str, split: str, folders: Sequence[Path], elsewhere: Mapping[Path, Path] | None = None
) -> None:
    """Raise a FileNotFoundError naming the first of ``folders`` that is missing (and the
    other place it was looked for, from ``elsewhere``), ``owner`` and ``split``.

    Example:
        >>> require_folders("MyDataModule", "val", [Path("/nowhere")])
        Traceback (most recent call last):
        FileNotFoundError: MyDataModule: no folder /nowhere (val split)
    """
    for folder in folders:
        if not folder.is_dir():
            other = (elsewhere or {}).get(folder)
            also = f" nor {other}" if other is not None else ""
            raise FileNotFoundError(f"{owner}: no folder {folder}{also} ({split} split)")


def list_files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Return the files under ``folder`` (recursively) whose suffix is one of ``suffixes``.

    Suffixes compare case-insensitively (``.JPG`` is a ``.jpg``).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("a.JPG", "b.png", "c.txt"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> sorted(p.name for p in list_files(folder, (".jpg", ".png")))
        ['a.JPG', 'b.png']
    """
    wanted = {s.lower() for s in suffixes}
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted]


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


def read_id_list(path: str | Path) -> list[str]:
    """Return the sample ids of a split list: one a line (blank lines and ``#`` skipped).

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "val_id.txt"
        >>> _ = file.write_text("2008_000003\\n\\n2008_000008\\n")
        >>> read_id_list(file)
        ['2008_000003', '2008_000008']
    """
    return list(read_lines(path, "split list", "image ids (one a line)"))


@dataclass(frozen=True)
class PairedFolders:
    """Each split an image folder and a mask folder; an image pairs with the mask of its name.

    A file's name is its path below its folder without the suffix, or without its
    ``endings`` (image ending, mask ending), which then pick the files read.

    Args:
        owner: the data module, named in errors.
        folders: split -> (image folder, mask folder).
        image_suffixes, mask_suffixes: the files read (case-insensitive).
        endings: e.g. ``("_leftImg8bit.png", "_gtFine_labelIds.png")``; None: suffixes.
        elsewhere: folder -> another place it may be, named when neither exists.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for sub, name in (("images", "a.jpg"), ("images", "b.jpg"), ("labels", "a.png")):
        ...     (root / sub).mkdir(exist_ok=True)
        ...     _ = (root / sub / name).write_bytes(b"")
        >>> layout = PairedFolders("MyDataModule", {"train": (root / "images", root / "labels")})
        >>> samples, problems = layout.list_split("train")
        >>> [s.name for s in samples], len(problems)
        (['a'], 1)
    """

    owner: str
    folders: Mapping[str, tuple[Path, Path]]
    image_suffixes: tuple[str, ...] = (".jpg",)
    mask_suffixes: tuple[str, ...] = (".png",)
    endings: tuple[str, str] | None = None
    elsewhere: Mapping[Path, Path] = field(default_factory=dict)

    def list_split(self, split: str) -> tuple[list[Sample], list[str]]:
        """Return the image/mask pairs of ``split`` (paired by name) and the unpaired files."""
        images, masks = self.folders[split]
        require_folders(self.owner, split, (images, masks), self.elsewhere)
        image_files = list_files(images, self.image_suffixes)
        mask_files = list_files(masks, self.mask_suffixes)
        if self.endings is not None:
            image_files = [p for p in image_files if p.name.endswith(self.endings[0])]
            mask_files = [p for p in mask_files if p.name.endswith(self.endings[1])]
        return pair_by_stem(image_files, mask_files, images, masks, self.endings)


@dataclass(frozen=True)
class ListedSamples:
    """Each split a list of sample ids; an id's image and mask files at fixed places.

    Files that are missing are found when the samples are checked, one problem a sample.

    Args:
        owner: the data module, named in errors.
        lists: split -> its list file.
        image_dir, mask_dir: the folders of the images and the masks (must exist).
        image: an id's image file below ``image_dir``, ``{0}`` standing for the id.
        masks: an id's mask file(s) below ``mask_dir`` (several: one a class, say).
        read_ids: reads a list file into ids.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "images").mkdir(), (root / "masks").mkdir()
        (None, None)
        >>> _ = (root / "val.txt").write_text("a\\nb\\n")
        >>> layout = ListedSamples("MyDataModule", {"val": root / "val.txt"}, root / "images",
        ...                        root / "masks", masks=("{0}/{0}_00.png", "{0}/{0}_01.png"))
        >>> first = layout.list_split("val")[0][0]
        >>> first.image.relative_to(root).as_posix(), [m.name for m in first.masks]
        ('images/a.jpg', ['a_00.png', 'a_01.png'])
    """

    owner: str
    lists: Mapping[str, Path]
    image_dir: Path
    mask_dir: Path
    image: str = "{0}.jpg"
    masks: tuple[str, ...] = ("{0}.png",)
    read_ids: Callable[[Path], list[str]] = read_id_list

    def list_split(self, split: str) -> tuple[list[Sample], list[str]]:
        """Return the samples listed in the split's list file (no pairing problems)."""
        require_folders(self.owner, split, (self.image_dir, self.mask_dir))
        ids = self.read_ids(self.lists[split])
        samples = [
            Sample(
                name,
                self.image_dir / self.image.format(name),
                tuple(self.mask_dir / mask.format(name) for mask in self.masks),
            )
            for name in ids
        ]
        return samples, []
