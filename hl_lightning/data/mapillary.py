"""Mapillary Vistas (v1.2 and v2.0) and the class tree its label names spell.

Supported layout (the official archives, unpacked into ``root``)::

    root/config.json                       v1.2 label definitions (66 labels)
    root/config_v2.0.json                  v2.0 label definitions (124 labels)
    root/training/images/<key>.jpg
    root/training/labels/<key>.png         v1.2 labels: palette PNG, pixel index = label id
    root/training/v2.0/labels/<key>.png    v2.0 labels, same encoding
    root/validation/...                    the same folders
    root/testing/images/<key>.jpg          no labels: the test split defaults to validation

A config reads ``{"labels": [{"name": "construction--flat--road", "readable": "Road",
"color": [128, 64, 128], "evaluate": true, ...}, ...]}``; label id ``i`` is entry ``i``.
Every label is a class, as in the paper (its tree has ``unlabeled`` as a leaf): the
``evaluate`` flags are not used.

Names and tree: a label name is a path in a tree, ``construction--flat--road`` is
construction > flat > road (:func:`mapillary_hierarchy`). A class (and a group) is named
by the last component of its path, ``road``, so that the v1.2 labels carry the paper's 66
leaf names and :meth:`~hl_lightning.hierarchy.Hierarchy.reorder` matches the paper's tree
by name. Where last components collide, the shortest path suffix that is unique is used:
v1.2 has no collision; in v2.0, for instance, ``object--sign--back`` and
``object--traffic-sign--back`` become ``sign--back`` and ``traffic-sign--back``, and the
groups ``marking--discrete`` and ``marking-only--discrete`` keep those full names
(:func:`mapillary_class_names`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hl_lightning.data.folder import (
    FileDataModule,
    LabelMasks,
    OnBad,
    Sample,
    list_files,
    pair_by_stem,
)
from hl_lightning.data.synthetic import IGNORE_INDEX
from hl_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from hl_lightning.hierarchy import Hierarchy

__all__ = [
    "MAPILLARY_SPLITS",
    "MAPILLARY_VERSIONS",
    "MapillaryDataModule",
    "mapillary_class_names",
    "mapillary_hierarchy",
    "read_mapillary_labels",
]

#: Version -> (label config file, label folder inside a split folder).
MAPILLARY_VERSIONS: dict[str, tuple[str, str]] = {
    "1.2": ("config.json", "labels"),
    "2.0": ("config_v2.0.json", "v2.0/labels"),
}
#: The folder of each split.
MAPILLARY_SPLITS: dict[str, str] = {"train": "training", "val": "validation", "test": "testing"}
_SEPARATOR = "--"


def read_mapillary_labels(config: str | Path) -> list[dict[str, Any]]:
    """Return the label entries of a Vistas config file, checked to have a ``name`` each.

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "config.json"
        >>> _ = file.write_text('{"labels": [{"name": "nature--sky", "color": [70, 130, 180]}]}')
        >>> [label["name"] for label in read_mapillary_labels(file)]
        ['nature--sky']
    """
    try:
        data = json.loads(Path(config).read_text(encoding="utf-8"))
    except OSError as err:
        raise FileNotFoundError(f"cannot read the Vistas config {config}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{config}:{err.lineno}: not valid JSON: {err.msg}") from err
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"{config}: expected {{'labels': [{{'name': ...}}, ...]}}")
    for i, label in enumerate(labels):
        if not isinstance(label, dict) or not isinstance(label.get("name"), str):
            raise ValueError(f"{config}: label {i} has no 'name': {label!r}")
    return labels


def _short_names(paths: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """Return, for every path, its shortest suffix no other path ends with (joined by --)."""
    names = {}
    for path in paths:
        k = 1
        while k < len(path) and any(
            other != path and other[-k:] == path[-k:] for other in paths if len(other) >= k
        ):
            k += 1
        names[path] = _SEPARATOR.join(path[-k:])
    return names


def _label_tree(label_names: Sequence[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Return the nested tree of short names and the label ids' short names, in label order."""
    paths = [tuple(name.split(_SEPARATOR)) for name in label_names]
    for name, path in zip(label_names, paths, strict=True):
        if not all(path):
            raise ValueError(f"Vistas label {name!r} has an empty path component")
    nodes = list(dict.fromkeys(path[:k] for path in paths for k in range(1, len(path) + 1)))
    labels = set(paths)
    for path in labels:
        inner = [other for other in labels if len(other) > len(path) and other[: len(path)] == path]
        if inner:
            raise ValueError(
                f"Vistas label {_SEPARATOR.join(path)!r} is also a group of "
                f"{_SEPARATOR.join(inner[0])!r}: a label must be a leaf"
            )
    if len(labels) != len(paths):
        raise ValueError("Vistas label names are not unique")
    short = _short_names(nodes)
    tree: dict[str, Any] = {}
    for node in nodes:  # parents come before their children
        parent = tree
        for k in range(1, len(node)):
            parent = parent[short[node[:k]]]
        parent[short[node]] = None if node in labels else {}
    return tree, tuple(short[path] for path in paths)


def mapillary_class_names(label_names: Sequence[str]) -> tuple[str, ...]:
    """Return the class names of Vistas labels: the last path component, unless it collides.

    Colliding names take the shortest unique suffix of their path (see the module
    documentation).

    Example:
        >>> mapillary_class_names(["construction--flat--road", "object--sign--back",
        ...                        "object--traffic-sign--back"])
        ('road', 'sign--back', 'traffic-sign--back')
    """
    return _label_tree(label_names)[1]


def mapillary_hierarchy(config: str | Path) -> Hierarchy:
    """Return the tree spelled by the label names of a Vistas config, leaves in label-id order.

    ``construction--flat--road`` is the leaf ``road`` under ``flat`` under
    ``construction``; nodes are named as :func:`mapillary_class_names` says. For v1.2 it
    is the paper's tree (3 levels: 7, 37, 66 groups).

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "config.json"
        >>> names = ["nature--sky", "construction--flat--road", "construction--flat--sidewalk"]
        >>> _ = file.write_text(json.dumps({"labels": [{"name": n} for n in names]}))
        >>> h = mapillary_hierarchy(file)
        >>> h.leaves, h.group_names(0), h.group_names(1)
        (('sky', 'road', 'sidewalk'), ('nature', 'construction'), ('sky', 'flat'))
    """
    names = [label["name"] for label in read_mapillary_labels(config)]
    try:
        tree, class_names = _label_tree(names)
    except ValueError as err:
        raise ValueError(f"{config}: {err}") from err
    hierarchy = Hierarchy.from_dict(tree)
    return Hierarchy(hierarchy.roots, class_names, source=str(config))


class MapillaryDataModule(FileDataModule):
    """Mapillary Vistas v1.2 or v2.0: classes from the config, its tree as the hierarchy.

    Label id ``i`` is the config's entry ``i``; :attr:`class_names` are the short names
    of :func:`mapillary_class_names` (``road``, ``car``: the paper's names for v1.2),
    :attr:`label_names` the config's full names, and :attr:`hierarchy` the tree the names
    spell (:func:`mapillary_hierarchy`). The paper's tree (``hierarchy=mapillary_paper``)
    matches the v1.2 class names.

    Args:
        root: the dataset folder (see the module documentation for the layout).
        version: ``"1.2"`` or ``"2.0"``: which labels folder to read.
        config: the label config file, relative to ``root``; None: the version's
            (``config.json`` for 1.2, ``config_v2.0.json`` for 2.0).
        test_split: the folder the test split reads (``testing`` has no labels).
        image_size, scale, hflip, flip_pairs, mean, std, on_bad, ignore_index, batch_size,
            num_workers, seed, pin_memory: as in
            :class:`~hl_lightning.data.folder.FileDataModule`. In v2.0, mirrored arrow
            markings swap: set ``flip_pairs`` for their classes, or ``hflip`` to 0.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> names = ["construction--flat--road", "nature--sky", "object--vehicle--car"]
        >>> labels = {"labels": [{"name": name} for name in names]}
        >>> _ = (root / "config.json").write_text(json.dumps(labels))
        >>> for split in ("training", "validation"):
        ...     (root / split / "images").mkdir(parents=True)
        ...     (root / split / "labels").mkdir()
        ...     Image.new("RGB", (8, 6)).save(root / split / "images" / "k.jpg")
        ...     Image.new("L", (8, 6), 2).save(root / split / "labels" / "k.png")  # label id 2
        >>> dm = MapillaryDataModule(root, image_size=None)
        >>> dm.class_names, dm.hierarchy.num_levels
        (('road', 'sky', 'car'), 3)
        >>> dm.setup("fit")
        >>> dm.val_dataset[0][1].unique().tolist()
        [2]
    """

    def __init__(
        self,
        root: str | Path,
        version: str = "1.2",
        config: str | None = None,
        test_split: str = "validation",
        image_size: int | Sequence[int] | None = (480, 640),
        scale: Sequence[float] = (1.0, 1.0),
        hflip: float = 0.5,
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
        version = str(version)
        if version not in MAPILLARY_VERSIONS:
            raise ValueError(f"Vistas version must be one of {', '.join(MAPILLARY_VERSIONS)}")
        default_config, self.label_dir = MAPILLARY_VERSIONS[version]
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"MapillaryDataModule: data root {root} is not a folder")
        config_file = root / (config or default_config)
        labels = read_mapillary_labels(config_file)
        hierarchy = mapillary_hierarchy(config_file)
        super().__init__(
            root,
            hierarchy.leaves,
            hierarchy,
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
        self.save_plain_hyperparameters(version=version, config=config, test_split=test_split)
        self.version = version
        self.label_names = tuple(label["name"] for label in labels)
        self.split_dirs = {**MAPILLARY_SPLITS, "test": test_split}
        self._decoder = LabelMasks(self.num_classes, ignore_index)

    @property
    def decoder(self) -> LabelMasks:
        """Label-id PNG decoder (palette indices are the label ids)."""
        return self._decoder

    def list_split(self, split: str) -> tuple[list[Sample], list[str]]:
        """Return the image/label pairs of ``split`` from its images and labels folders."""
        images = self.root / self.split_dirs[split] / "images"
        labels = self.root / self.split_dirs[split] / self.label_dir
        for folder in (images, labels):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"MapillaryDataModule: no folder {folder} ({split} split, v{self.version})"
                )
        return pair_by_stem(
            list_files(images, (".jpg",)), list_files(labels, (".png",)), images, labels
        )
