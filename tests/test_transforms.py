"""Tests for hl_lightning/data/transforms.py: paired resize, scale/crop, flip, normalisation."""

from __future__ import annotations

import pytest
import torch

from hl_lightning.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PairedTransform,
    flip_labels,
    image_size,
)

IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def blocks(height: int = 24, width: int = 32, cell: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a mask (H, W) of cell x cell blocks with labels 0..4, and an image (3, H, W)
    uint8 whose every channel is 40 x the label: the image encodes the mask."""
    rows = torch.arange(height)[:, None] // cell
    cols = torch.arange(width)[None, :] // cell
    mask = (rows * 3 + cols) % 5
    image = (40 * mask).to(torch.uint8).expand(3, height, width).clone()
    return image, mask


def agreement(image: torch.Tensor, mask: torch.Tensor) -> float:
    """Return the share of pure-colour pixels (not blended at edges) whose colour is the mask's."""
    level = image[0] * 255 / 40  # the identity normalisation: image in [0, 1]
    pure = (level - level.round()).abs() < 0.05
    labelled = mask != 255
    return float((level.round().long() == mask)[pure & labelled].float().mean())


def test_image_size_accepts_int_pair_and_none() -> None:
    assert image_size(8) == (8, 8)
    assert image_size((6, 10)) == (6, 10)
    assert image_size(None) is None
    for bad in ((0, 4), (1, 2, 3)):
        with pytest.raises(ValueError, match="image_size"):
            image_size(bad)


def test_flip_labels_swaps_the_named_pairs() -> None:
    names = ["background", "left_eye", "right_eye", "nose", "left_ear", "right_ear"]
    pairs = [["left_eye", "right_eye"], ["right_ear", "left_ear"]]
    assert flip_labels(names, pairs) == (0, 2, 1, 3, 5, 4)
    assert flip_labels(names, []) == tuple(range(6))


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([["left_eye", "left_hand"]], "not class names: left_hand"),
        ([["left_eye", "left_eye"]], "two different classes"),
        ([["left_eye", "right_eye"], ["left_eye", "nose"]], "left_eye already in another pair"),
    ],
)
def test_flip_labels_rejects_bad_pairs(pairs: list[list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        flip_labels(["left_eye", "right_eye", "nose"], pairs)


def test_eval_transform_resizes_and_normalises() -> None:
    image = torch.full((3, 12, 16), 128, dtype=torch.uint8)
    mask = torch.zeros(12, 16, dtype=torch.long)
    out_image, out_mask = PairedTransform(size=(6, 8))(image, mask)
    assert out_image.shape == (3, 6, 8) and out_image.dtype == torch.float32
    assert out_mask.shape == (6, 8) and out_mask.dtype == torch.int64
    expected = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out_image[:, 0, 0], expected, atol=1e-5)


def test_no_size_keeps_the_pair_unchanged() -> None:
    image, mask = blocks()
    out_image, out_mask = PairedTransform(**IDENTITY)(image, mask)
    assert torch.equal(out_mask, mask)
    assert torch.allclose(out_image * 255, image.float())


@pytest.mark.parametrize("size", [(12, 16), (18, 24), (48, 64), (24, 8)])
def test_masks_resize_by_nearest_neighbour_and_stay_aligned(size: tuple[int, int]) -> None:
    image, mask = blocks()
    mask[0, 0] = 255  # the ignore value is a label like the others: never blended
    out_image, out_mask = PairedTransform(size=size, **IDENTITY)(image, mask)
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())
    assert agreement(out_image, out_mask) > 0.95


def test_random_scale_crops_image_and_mask_alike() -> None:
    image, mask = blocks()
    transform = PairedTransform(size=(24, 32), scale=(1.2, 2.0), **IDENTITY)
    generator = torch.Generator().manual_seed(0)
    crops = [transform(image, mask, generator) for _ in range(6)]
    for out_image, out_mask in crops:
        assert out_image.shape == (3, 24, 32) and out_mask.shape == (24, 32)
        assert agreement(out_image, out_mask) > 0.95
    assert len({tuple(m.flatten().tolist()) for _, m in crops}) > 1  # random windows


def test_scale_below_one_pads_with_mean_and_ignore() -> None:
    image, mask = blocks()
    transform = PairedTransform(size=(24, 32), scale=(0.5, 0.5), ignore_index=255)
    out_image, out_mask = transform(image, mask, torch.Generator().manual_seed(0))
    assert out_mask.shape == (24, 32)
    assert (out_mask[12:, :] == 255).all() and (out_mask[:, 16:] == 255).all()
    assert (out_mask[:12, :16] != 255).all()
    assert (out_image[:, 12:, :] == 0).all()  # normalised: the pad is the mean colour


def test_flip_mirrors_the_pair_and_swaps_left_right_labels() -> None:
    image, mask = blocks()
    transform = PairedTransform(hflip=1.0, flip_map=(0, 2, 1, 3, 4), **IDENTITY)
    out_image, out_mask = transform(image, mask)
    assert torch.allclose(out_image * 255, image.flip(-1).float())
    mirrored = mask.flip(-1)
    expected = torch.tensor([0, 2, 1, 3, 4])[mirrored]
    assert torch.equal(out_mask, expected)
    # the ignore value passes unchanged
    mask[0, -1] = 255
    assert transform(image, mask)[1][0, 0] == 255


def test_flip_probability_half_flips_some() -> None:
    image, mask = blocks()
    transform = PairedTransform(hflip=0.5, **IDENTITY)
    generator = torch.Generator().manual_seed(1)
    flipped = [torch.equal(transform(image, mask, generator)[1], mask.flip(-1)) for _ in range(40)]
    assert 5 < sum(flipped) < 35


def test_same_generator_seed_gives_the_same_augmentation() -> None:
    image, mask = blocks()
    transform = PairedTransform(size=(16, 16), scale=(1.0, 1.8), hflip=0.5)

    def run(seed: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return [transform(image, mask, generator)[1] for _ in range(5)]

    first, again, other = run(3), run(3), run(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": (2.0, 1.0)}, "scale"),
        ({"scale": (0.0, 1.0)}, "scale"),
        ({"hflip": 1.5}, "hflip"),
        ({"mean": (0.5,)}, "mean and std"),
        ({"std": (1.0, 0.0, 1.0)}, "mean and std"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PairedTransform(**kwargs)


def test_image_and_mask_sizes_must_agree() -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        PairedTransform()(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 5))
