"""Tests for hl_lightning/data/cityscapes.py and the shipped categories tree: the gtFine layout.

What every loader shares (batches, label maps, splits, bad data, the Hydra config, a fit)
is tested in ``test_data_files.py`` on the Cityscapes fixture of ``_data_sets.py``: three
24 x 32 frames per split over two cities, official label ids (void, evaluated and rare
classes) mapped to train ids. Here: the label table, the tree, the test split option.
"""

from __future__ import annotations

from pathlib import Path

from _data_sets import Cityscapes

from hl_lightning.data import CITYSCAPES_CLASSES, CITYSCAPES_LABELS
from hl_lightning.hierarchies import cityscapes_hierarchy, load_hierarchy
from hl_lightning.hierarchy import Hierarchy

CASE = Cityscapes()


# ---------------------------------------------------------------------------- the table
def test_official_table_gives_19_classes_in_train_id_order() -> None:
    assert len(CITYSCAPES_CLASSES) == 19
    assert CITYSCAPES_CLASSES[:3] == ("road", "sidewalk", "building")
    assert CITYSCAPES_CLASSES[-1] == "bicycle"
    train_ids = sorted(label.train_id for label in CITYSCAPES_LABELS if 0 <= label.train_id < 255)
    assert train_ids == list(range(19))
    assert len({label.id for label in CITYSCAPES_LABELS}) == len(CITYSCAPES_LABELS)


def test_shipped_tree_is_the_tables_categories() -> None:
    categories: dict[str, list[str]] = {}
    for label in sorted(CITYSCAPES_LABELS, key=lambda label: label.train_id):
        if 0 <= label.train_id < 255:
            categories.setdefault(label.category, []).append(label.name)
    # a category holding only its namesake (sky) is a leaf at level 0
    tree = {
        category: None if names == [category] else names for category, names in categories.items()
    }
    table = Hierarchy.from_dict(tree, level_names=("category", "class"))
    assert cityscapes_hierarchy() == table
    h = load_hierarchy("cityscapes", CITYSCAPES_CLASSES)
    assert [h.num_groups(d) for d in range(2)] == [7, 19]
    assert h.group_names(0) == (
        "flat",
        "construction",
        "object",
        "nature",
        "sky",
        "human",
        "vehicle",
    )


# ---------------------------------------------------------------------------- the layout
def test_test_split_option_reads_the_test_folder(tmp_path: Path) -> None:
    dm = CASE.module(CASE.write(tmp_path), test_split="test")
    dm.setup("test")
    assert dm.test_dataset.samples[0].name == "berlin/berlin_000000_000019"
