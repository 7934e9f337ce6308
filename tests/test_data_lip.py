"""Tests for hl_lightning/data/lip.py and HSSN's LIP tree: the official TrainVal layout.

What every loader shares (batches, label maps, splits, flips, bad data, the Hydra config,
a fit) is tested in ``test_data_files.py`` on the LIP fixture of ``_data_sets.py``:
``TrainVal_images/{train,val}_images/<id>.jpg`` and
``TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png`` (label ids 0-19),
three 24 x 40 images per split, and the id lists the data set ships. Here: the class list,
its flip pairs, the tree, and archives unpacked into doubled folders.
"""

from __future__ import annotations

from pathlib import Path

from _data_sets import LIP

from hl_lightning.data import LIP_CLASSES, LIP_FLIP_PAIRS
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, lip_hierarchy, load_hierarchy

LEVELS = ("figure", "body", "part")
# HSSN's rmi_hiera_triplet_loss.py (20 classes): the upper- and lower-body label ids
UPPER = [1, 2, 3, 4, 5, 6, 7, 10, 11, 13, 14, 15]
LOWER = [8, 9, 12, 16, 17, 18, 19]
CASE = LIP()


# ---------------------------------------------------------------------------- the tree
def test_classes_flip_pairs_and_hssn_tree() -> None:
    assert len(LIP_CLASSES) == 20 and LIP_CLASSES[0] == "background"
    assert LIP_CLASSES[13:] == (
        "face",
        "left_arm",
        "right_arm",
        "left_leg",
        "right_leg",
        "left_shoe",
        "right_shoe",
    )
    # HSSN's RandomSwapFlip: swap_index_left=[14, 16, 18], swap_index_right=[15, 17, 19]
    ids = {name: i for i, name in enumerate(LIP_CLASSES)}
    assert [(ids[a], ids[b]) for a, b in LIP_FLIP_PAIRS] == [(14, 15), (16, 17), (18, 19)]
    h = lip_hierarchy()
    assert sorted(h.leaves) == sorted(LIP_CLASSES) and h.level_names == LEVELS
    assert [h.num_groups(d) for d in range(h.num_levels)] == [2, 3, 20]
    assert BUILTIN_HIERARCHIES["lip"]() == h
    ordered = load_hierarchy("lip", LIP_CLASSES)
    body = [ordered.group_names(1)[g] for g in ordered.level_index(1).tolist()]
    assert [i for i, b in enumerate(body) if b == "upper_body"] == UPPER
    assert [i for i, b in enumerate(body) if b == "lower_body"] == LOWER
    assert body[0] == "background"
    assert ordered.level_index(0).tolist() == [0] + [1] * 19


# ---------------------------------------------------------------------------- the layout
def test_doubled_archive_folders_via_options(tmp_path: Path) -> None:
    CASE.write(tmp_path / "TrainVal_images")  # TrainVal_images/TrainVal_images/...
    dm = CASE.module(
        tmp_path / "TrainVal_images",
        image_dir="TrainVal_images",
        mask_dir="TrainVal_parsing_annotations",
    )
    dm.setup("validate")
    assert len(dm.val_dataset) == 3
