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

from pathlib import Path
from typing import ClassVar

from typing_extensions import Unpack

from hl_lightning.data.files import FileDataModule, FileOptions, one_of
from hl_lightning.data.layouts import PairedFolders
from hl_lightning.hierarchies.mapillary import (
    mapillary_class_names,
    mapillary_hierarchy,
    read_mapillary_labels,
)

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
            :class:`~hl_lightning.data.files.FileDataModule`. In v2.0, mirrored arrow
            markings swap: set ``flip_pairs`` for their classes, or ``hflip`` to 0.

    Example:
        >>> import json, tempfile
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

    defaults: ClassVar[FileOptions] = {"image_size": (480, 640), "hflip": 0.5}

    def __init__(
        self,
        root: str | Path,
        version: str = "1.2",
        config: str | None = None,
        test_split: str = "validation",
        **options: Unpack[FileOptions],
    ) -> None:
        version = one_of("version", str(version), MAPILLARY_VERSIONS)
        default_config, self.label_dir = MAPILLARY_VERSIONS[version]
        config_file = self.data_root(root) / (config or default_config)
        labels = read_mapillary_labels(config_file)
        hierarchy = mapillary_hierarchy(config_file)
        super().__init__(root, hierarchy.leaves, hierarchy, **options)
        self.save_plain_hyperparameters(version=version, config=config, test_split=test_split)
        self.version = version
        self.label_names = tuple(label["name"] for label in labels)
        split_dirs = {**MAPILLARY_SPLITS, "test": test_split}
        self.layout = PairedFolders(
            "MapillaryDataModule",
            {
                split: (self.root / folder / "images", self.root / folder / self.label_dir)
                for split, folder in split_dirs.items()
            },
        )
