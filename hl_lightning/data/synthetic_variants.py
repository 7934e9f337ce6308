"""The variants of the synthetic data: their classes, looks and image statistics.

A variant's :class:`Look` says how each class is drawn (a stuff class's colour and
texture, a thing class's hue and shade), which built-in tree its classes form, and the
statistics its images are standardised with; :mod:`hl_lightning.data.synthetic` draws
the scenes from it.

- ``"default"`` (13 classes, the tree ``synthetic``): every family has its own hue, so
  the coarse levels are easy: a small U-Net reaches about 0.97 on both (and 0.6 at the
  leaves), too easy to tell losses apart there.
- ``"hard"`` (17 classes, the tree ``synthetic_hard``): three or four classes per family
  (murky water, moss, crescent and hexagon are added), and each thing family wears the
  hue of a stuff family (round: the water's blue; angular: the vegetation's green) at the
  same saturations, with a faint texture on the shapes, smaller shapes and more pixel
  noise: kind and family are told by shape and texture, not colour. A flat U-Net reaches
  about 0.69 / 0.66 / 0.33 (kind / family / class) in 8 epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hl_lightning.hierarchies import builtin_hierarchy
from hl_lightning.hierarchy import Hierarchy

__all__ = [
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_HARD_CLASSES",
    "SYNTHETIC_HARD_MEAN",
    "SYNTHETIC_HARD_STD",
    "SYNTHETIC_MEAN",
    "SYNTHETIC_STD",
    "Look",
    "Region",
    "Shape",
    "Variant",
    "synthetic_classes",
    "synthetic_look",
    "synthetic_normalisation",
    "synthetic_variant_hierarchy",
]

#: Label order of the dataset: label id ``i`` is ``SYNTHETIC_CLASSES[i]``.
SYNTHETIC_CLASSES: tuple[str, ...] = (
    "background",
    "sky",
    "calm_water",
    "choppy_water",
    "grass",
    "shrub",
    "forest",
    "disc",
    "ring",
    "ellipse",
    "square",
    "triangle",
    "diamond",
)
#: Per-channel mean and standard deviation of the raw [0, 1] RGB images (measured on
#: 768 of them); the dataset returns ``(raw - mean) / std``.
SYNTHETIC_MEAN: tuple[float, float, float] = (0.45, 0.49, 0.43)
SYNTHETIC_STD: tuple[float, float, float] = (0.23, 0.2, 0.24)

#: Label order of the hard variant (``variant="hard"``), and its raw images' statistics.
SYNTHETIC_HARD_CLASSES: tuple[str, ...] = (
    "background",
    "sky",
    "calm_water",
    "choppy_water",
    "murky_water",
    "grass",
    "moss",
    "shrub",
    "forest",
    "disc",
    "ring",
    "ellipse",
    "crescent",
    "square",
    "triangle",
    "diamond",
    "hexagon",
)
SYNTHETIC_HARD_MEAN: tuple[float, float, float] = (0.4, 0.51, 0.47)
SYNTHETIC_HARD_STD: tuple[float, float, float] = (0.18, 0.19, 0.22)


@dataclass(frozen=True)
class Region:
    """Look of a stuff class: a colour and a grating texture.

    Example:
        >>> synthetic_look("default").regions["shrub"].spots
        True
    """

    hue: float
    saturation: float
    value: float
    period: tuple[float, float]  # grating period range, pixels
    angle: tuple[float, float]  # grating direction range, radians (pi/2: horizontal stripes)
    contrast: float  # texture amplitude, relative to the colour
    spots: bool = False  # two crossed gratings instead of stripes


@dataclass(frozen=True)
class Shape:
    """Look of a thing class: its family's hue and its own shade (the shape is by name).

    Example:
        >>> synthetic_look("hard").shapes["disc"]
        Shape(hue=0.58, value=0.88)
    """

    hue: float
    value: float


@dataclass(frozen=True)
class Look:
    """Everything that tells one variant of the data from another: classes and their looks.

    Example:
        >>> look = synthetic_look("default")
        >>> sorted([*look.regions, *look.shapes]) == sorted(look.classes[1:])  # all but background
        True
    """

    classes: tuple[str, ...]  # label order
    tree: str  # the built-in hierarchy over the classes
    regions: dict[str, Region]
    shapes: dict[str, Shape]
    upright: tuple[str, ...]  # shapes kept near axis-aligned (a turned square is a diamond)
    mean: tuple[float, float, float]  # per-channel mean and std of the raw [0, 1] images
    std: tuple[float, float, float]
    grey_saturation: float = 0.15  # the background's largest tint
    shape_saturation: tuple[float, float] = (0.55, 0.9)
    shape_radius: tuple[float, float] = (6.0, 13.0)  # pixels at 64 x 64
    shape_texture: float = 0.0  # amplitude of a faint grating on the shapes (0: none)
    noise: float = 0.08  # pixel noise


_DEFAULT = Look(
    classes=SYNTHETIC_CLASSES,
    tree="synthetic",
    regions={
        "sky": Region(0.54, 0.35, 0.9, (24.0, 40.0), (0.0, math.pi), 0.05),
        "calm_water": Region(0.61, 0.7, 0.65, (8.0, 12.0), (1.27, 1.87), 0.2),
        "choppy_water": Region(0.61, 0.7, 0.65, (4.0, 6.5), (0.0, math.pi), 0.2),
        "grass": Region(0.3, 0.65, 0.72, (3.0, 5.0), (-0.3, 0.3), 0.2),
        "shrub": Region(0.3, 0.65, 0.58, (5.0, 8.0), (0.0, math.pi), 0.25, spots=True),
        "forest": Region(0.3, 0.65, 0.45, (8.0, 12.0), (0.0, math.pi), 0.25, spots=True),
    },
    shapes={
        "disc": Shape(0.0, 0.92),
        "ring": Shape(0.0, 0.74),
        "ellipse": Shape(0.0, 0.56),
        "square": Shape(0.12, 0.92),
        "triangle": Shape(0.12, 0.74),
        "diamond": Shape(0.12, 0.56),
    },
    upright=("square", "diamond"),
    mean=SYNTHETIC_MEAN,
    std=SYNTHETIC_STD,
)

# The hard variant: four classes in most families, and every thing family wears the hue of
# a stuff family (round things the water's blue, angular ones the vegetation's green), in
# the same saturations and under a faint texture, so kind and family are no longer told by
# colour alone; siblings share hue and differ in shade, texture or shape.
_HARD = Look(
    classes=SYNTHETIC_HARD_CLASSES,
    tree="synthetic_hard",
    regions={
        "sky": Region(0.55, 0.3, 0.85, (24.0, 40.0), (0.0, math.pi), 0.05),
        "calm_water": Region(0.6, 0.55, 0.62, (8.0, 12.0), (1.27, 1.87), 0.2),
        "choppy_water": Region(0.6, 0.55, 0.62, (4.0, 6.5), (0.0, math.pi), 0.2),
        "murky_water": Region(0.6, 0.4, 0.5, (6.0, 9.0), (0.0, math.pi), 0.12),
        "grass": Region(0.31, 0.55, 0.7, (3.0, 5.0), (-0.3, 0.3), 0.2),
        "moss": Region(0.31, 0.55, 0.62, (3.0, 5.0), (0.0, math.pi), 0.2, spots=True),
        "shrub": Region(0.31, 0.55, 0.55, (5.0, 8.0), (0.0, math.pi), 0.25, spots=True),
        "forest": Region(0.31, 0.55, 0.45, (8.0, 12.0), (0.0, math.pi), 0.25, spots=True),
    },
    shapes={
        "disc": Shape(0.58, 0.88),
        "ring": Shape(0.58, 0.74),
        "ellipse": Shape(0.58, 0.6),
        "crescent": Shape(0.58, 0.46),
        "square": Shape(0.33, 0.88),
        "triangle": Shape(0.33, 0.74),
        "diamond": Shape(0.33, 0.6),
        "hexagon": Shape(0.33, 0.46),
    },
    upright=("square", "diamond"),
    mean=SYNTHETIC_HARD_MEAN,
    std=SYNTHETIC_HARD_STD,
    grey_saturation=0.25,
    shape_saturation=(0.4, 0.7),
    shape_radius=(5.0, 11.0),
    shape_texture=0.08,
    noise=0.1,
)

#: The variants of the data: ``"default"`` and ``"hard"`` (see the module documentation).
Variant = Literal["default", "hard"]
_LOOKS: dict[str, Look] = {"default": _DEFAULT, "hard": _HARD}


def synthetic_look(variant: str) -> Look:
    """Return the look of ``variant``; raise a ValueError naming the known ones.

    Example:
        >>> synthetic_look("hard").tree
        'synthetic_hard'
    """
    if variant not in _LOOKS:
        raise ValueError(
            f"unknown synthetic data variant {variant!r}; known: {', '.join(map(repr, _LOOKS))}"
        )
    return _LOOKS[variant]


def synthetic_classes(variant: Variant = "default") -> tuple[str, ...]:
    """Return the label order of the synthetic data's ``variant``.

    Example:
        >>> synthetic_classes("hard")[-2:]
        ('diamond', 'hexagon')
    """
    return synthetic_look(variant).classes


def synthetic_normalisation(
    variant: Variant = "default",
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Return the per-channel (mean, std) the synthetic data's ``variant`` is standardised with.

    Example:
        >>> synthetic_normalisation() == (SYNTHETIC_MEAN, SYNTHETIC_STD)
        True
    """
    look = synthetic_look(variant)
    return look.mean, look.std


def synthetic_variant_hierarchy(variant: Variant = "default") -> Hierarchy:
    """Return the tree of the synthetic data's ``variant``, leaves in tree order.

    Example:
        >>> h = synthetic_variant_hierarchy("hard")
        >>> [h.num_groups(d) for d in range(h.num_levels)]
        [3, 6, 17]
    """
    return builtin_hierarchy(synthetic_look(variant).tree)
