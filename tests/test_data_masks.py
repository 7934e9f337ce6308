"""Tests for hl_lightning/data/masks.py: the mask decoders and their one wording for bad values.

The decoders at work in every loader are tested in ``test_data_files.py``; here, the cases
a fixture data set does not reach: values beyond 8 bits, and an ignore value that is no
byte.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from hl_lightning.data.masks import LabelMasks, LookupMasks, bad_values


def save_16_bit(values: list[int], path: Path) -> tuple[Path]:
    """Save one row of 16-bit values as a PNG; return the decoder's path tuple."""
    image = Image.new("I;16", (len(values), 1))
    image.putdata(values)
    image.save(path)
    return (path,)


def test_lookup_masks_map_the_table_and_name_every_other_value(tmp_path: Path) -> None:
    decoder = LookupMasks({0: 255, 7: 0, 26: 13}, 255, "Cityscapes label ids", "*_labelIds.png")
    paths = save_16_bit([7, 26, 0, 300, 200, 200], tmp_path / "mask.png")
    with Image.open(paths[0]) as image:
        assert decoder.check(image) == (
            "mask mode 'I;16' is not an 8-bit label map (expected *_labelIds.png)"
        )
    mask, problem = decoder(paths)
    assert mask.tolist() == [[0, 13, 255, 255, 255, 255]]
    assert problem == "3 pixels with values 200, 300, not Cityscapes label ids"


def test_lookup_masks_keep_an_ignore_value_that_is_no_byte(tmp_path: Path) -> None:
    decoder = LookupMasks({0: -1, 1: 0}, -1, "ids", "a mask")
    mask, problem = decoder(save_16_bit([0, 1, 5], tmp_path / "mask.png"))
    assert mask.tolist() == [[-1, 0, -1]] and problem == "1 pixels with values 5, not ids"


def test_label_masks_name_values_that_are_no_label(tmp_path: Path) -> None:
    mask, problem = LabelMasks(3, 255)(save_16_bit([2, 255, 3, 1000], tmp_path / "mask.png"))
    assert mask.tolist() == [[2, 255, 255, 255]]
    assert problem == (
        "2 pixels with values 3, 1000, which are neither label ids 0-2 nor the ignore value 255"
    )


def test_bad_values_lists_ten_values_at_most() -> None:
    values = torch.arange(12)[None]
    assert bad_values(values, values >= 0, "no labels") == (
        "12 pixels with values 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ..., no labels"
    )
    assert bad_values(values, values < 0, "no labels") is None
