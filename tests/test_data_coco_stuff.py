"""Tests for hl_lightning/data/coco_stuff.py and the shipped COCO-Stuff tree: stuffthingmaps.

What every loader shares (batches, label maps, splits, bad data, the Hydra config, a fit)
is tested in ``test_data_files.py`` on the COCO-Stuff fixture of ``_data_sets.py``: three
24 x 32 images per split whose 8-bit label maps hold official label indices (id - 1: used
things and stuff, removed thing ids, 255 unlabeled). Here: the label table and its lookup,
the tree, and the two names of the label-map folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _data_sets import CocoStuff

from hl_lightning.data import COCO_STUFF_CLASSES, COCO_STUFF_LABELS
from hl_lightning.data.coco_stuff import COCO_STUFF_REMOVED, CocoStuffMasks
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, coco_stuff_hierarchy, load_hierarchy

LEVELS = ("kind", "setting", "supercategory", "class")


# ---------------------------------------------------------------------------- the table
def test_171_classes_by_name_in_official_id_order() -> None:
    assert len(COCO_STUFF_LABELS) == 182 and [i for i, _ in COCO_STUFF_LABELS] == list(
        range(1, 183)
    )
    assert len(COCO_STUFF_REMOVED) == 11 and COCO_STUFF_REMOVED.issubset(
        dict(COCO_STUFF_LABELS).values()
    )
    assert len(COCO_STUFF_CLASSES) == 171 and len(set(COCO_STUFF_CLASSES)) == 171
    things = [n for i, n in COCO_STUFF_LABELS if i <= 91 and n not in COCO_STUFF_REMOVED]
    assert len(things) == 80 and COCO_STUFF_CLASSES[:80] == tuple(things)
    assert COCO_STUFF_CLASSES[0] == "person" and COCO_STUFF_CLASSES[79] == "toothbrush"
    assert COCO_STUFF_CLASSES[80] == "banner" and COCO_STUFF_CLASSES[-1] == "wood"


def test_lookup_maps_official_indices_by_name() -> None:
    decoder = CocoStuffMasks(ignore_index=255)
    names = dict(COCO_STUFF_LABELS)
    for value in range(182):
        name = names[value + 1]
        expected = 255 if name in COCO_STUFF_REMOVED else COCO_STUFF_CLASSES.index(name)
        assert decoder.lookup[value].item() == expected, name
    assert decoder.lookup[255].item() == 255
    assert (decoder.lookup[182:255] == -1).all()  # no COCO-Stuff index: bad data
    assert CocoStuffMasks(ignore_index=-1).lookup[[11, 255]].tolist() == [-1, -1]


# ---------------------------------------------------------------------------- the tree
def test_shipped_tree_is_the_official_hierarchy_over_the_classes() -> None:
    h = coco_stuff_hierarchy()
    assert sorted(h.leaves) == sorted(COCO_STUFF_CLASSES)
    assert h.level_names == LEVELS
    assert [h.num_groups(d) for d in range(h.num_levels)] == [2, 4, 27, 171]
    assert h.group_names(0) == ("things", "stuff")
    assert h.group_names(1) == (
        "indoor-super-things",
        "outdoor-super-things",
        "indoor-super-stuff",
        "outdoor-super-stuff",
    )
    assert BUILTIN_HIERARCHIES["coco_stuff"]() == h
    ordered = load_hierarchy("coco_stuff", COCO_STUFF_CLASSES)
    assert ordered.leaves == COCO_STUFF_CLASSES
    index = {name: i for i, name in enumerate(COCO_STUFF_CLASSES)}

    def group(level: int, name: str) -> str:
        return ordered.group_names(level)[ordered.level_index(level)[index[name]]]

    # every thing is under "things", every stuff class under "stuff"
    for i, name in enumerate(COCO_STUFF_CLASSES):
        assert group(0, name) == ("things" if i < 80 else "stuff"), name
    assert group(2, "person") == "person-things" and group(1, "person") == "outdoor-super-things"
    assert group(2, "wall-brick") == "wall-stuff" and group(1, "wall-brick") == "indoor-super-stuff"
    assert group(2, "sky-other") == "sky-stuff" and group(1, "sea") == "outdoor-super-stuff"
    assert group(2, "pizza") == "food-things" and group(2, "salad") == "food-stuff"


# ---------------------------------------------------------------------------- the layout
def test_the_readme_annotations_folder_is_found(tmp_path: Path) -> None:
    case = CocoStuff(mask_dir="annotations")
    dm = case.module(case.write(tmp_path))
    assert dm.mask_dir == tmp_path / "annotations"
    dm.setup("validate")
    assert len(dm.val_dataset) == 3


def test_neither_label_map_folder_names_both(tmp_path: Path) -> None:
    (tmp_path / "images" / "train2017").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError, match=r"no folder .*stuffthingmaps/train2017 nor .*annotations/train2017"
    ):
        CocoStuff().module(tmp_path).setup("fit")
