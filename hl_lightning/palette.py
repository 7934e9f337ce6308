"""Colours for per-level label maps: one palette per level, children shades of their parent.

Level-0 groups get evenly spaced hues. The children of a group share its hue band: each
child's hue lies within a narrow window around its parent's (never halfway to another
level-0 hue) and alternates between lighter and darker shades, so a map at a fine level
reads as a refinement of the coarse one. A group with a single child (a shallow leaf
standing for itself at the deeper levels) keeps its colour unchanged. Pixels that are not
a group id (``ignore_index``) are black.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import torch
from torch import Tensor

from hl_lightning.decode import level_parents
from hl_lightning.hierarchy import Hierarchy

__all__ = ["colorize", "level_palettes", "node_palette"]

_SATURATION = 0.75  # of the mid shade (lightness 0)
_VALUE = 0.85
_HUE_SPREAD = 0.6  # children's hues span this share of their parent's hue band
_SHADE_MIX = 0.5  # a child's lightness: this much its own shade, the rest its parent's


@dataclass(frozen=True)
class _Tone:
    """A group's colour: hue, the width of its hue band, lightness in [-1, 1] (0 mid)."""

    hue: float
    band: float
    lightness: float

    def rgb(self) -> tuple[int, int, int]:
        """Return the colour as 8-bit RGB: lighter is paler and brighter, darker is dimmer."""
        light = max(self.lightness, 0.0)
        dark = max(-self.lightness, 0.0)
        saturation = _SATURATION * (1.0 - 0.55 * light)
        value = (_VALUE + (1.0 - _VALUE) * light) * (1.0 - 0.5 * dark)
        r, g, b = colorsys.hsv_to_rgb(self.hue % 1.0, saturation, value)
        return round(r * 255), round(g * 255), round(b * 255)

    def children(self, count: int) -> list[_Tone]:
        """Return the tones of ``count`` children: spread hues, alternating shades."""
        if count == 1:
            return [self]
        band = self.band * _HUE_SPREAD / count
        shades = _interleaved_shades(count)
        return [
            _Tone(
                self.hue + self.band * _HUE_SPREAD * ((i + 0.5) / count - 0.5),
                band,
                (1.0 - _SHADE_MIX) * self.lightness + _SHADE_MIX * shades[i],
            )
            for i in range(count)
        ]


def _interleaved_shades(count: int) -> list[float]:
    """Return ``count`` distinct shades in [-1, 1], extremes first: +1, -1, next, ...

    Neighbouring siblings (adjacent hues) thus get clearly different shades.
    """
    evenly = [1.0 - 2.0 * k / (count - 1) for k in range(count)]
    order = [k // 2 if k % 2 == 0 else count - 1 - k // 2 for k in range(count)]
    return [evenly[k] for k in order]


def level_palettes(hierarchy: Hierarchy) -> list[Tensor]:
    """Return one uint8 palette (G_d, 3) per level, coarse to fine: row ``g`` is group ``g``.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> [p.shape for p in level_palettes(h)]
        [torch.Size([2, 3]), torch.Size([3, 3])]
        >>> level_palettes(h)[1][0].tolist() == level_palettes(h)[0][0].tolist()  # sky
        True
    """
    count = hierarchy.num_groups(0)
    tones = [[_Tone(i / count, 1.0 / count, 0.0) for i in range(count)]]
    for parents in level_parents(hierarchy):
        members: dict[int, list[int]] = {}  # parent -> its children, in group order
        for child, parent in enumerate(parents.tolist()):
            members.setdefault(parent, []).append(child)
        level: list[_Tone] = [tones[-1][0]] * len(parents)
        for parent, children in members.items():
            for child, tone in zip(
                children, tones[-1][parent].children(len(children)), strict=True
            ):
                level[child] = tone
        tones.append(level)
    return [torch.tensor([t.rgb() for t in level], dtype=torch.uint8) for level in tones]


def node_palette(hierarchy: Hierarchy) -> Tensor:
    """Return a uint8 palette (N, 3) by node id: each node's colour at its own level (a leaf
    its finest-level colour, an internal node its group's colour at its depth).

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> palettes, nodes = level_palettes(h), node_palette(h)
        >>> nodes[h.label_id("vehicle")].tolist() == palettes[0][1].tolist()
        True
        >>> nodes[h.label_id("truck")].tolist() == palettes[1][2].tolist()
        True
    """
    palettes = level_palettes(hierarchy)
    matrix = hierarchy.node_level_matrix()
    rows = [
        palettes[level][matrix[level, node]]
        for node, level in enumerate(hierarchy.node_level(n) for n in range(hierarchy.num_nodes))
    ]
    return torch.stack(rows)


def colorize(labels: Tensor, palette: Tensor) -> Tensor:
    """Return uint8 RGB images (*, H, W, 3): ``palette[label]``, black for other values.

    ``labels`` is any integer tensor of group ids (*, H, W); a value outside
    ``[0, len(palette))``, such as ``ignore_index``, is black.

    Example:
        >>> palette = torch.tensor([[255, 0, 0], [0, 0, 255]], dtype=torch.uint8)
        >>> colorize(torch.tensor([[0, 1, 255]]), palette).tolist()
        [[[255, 0, 0], [0, 0, 255], [0, 0, 0]]]
    """
    labels = labels.long()
    table = torch.cat([palette.to(labels.device), palette.new_zeros(1, 3).to(labels.device)])
    known = (labels >= 0) & (labels < len(palette))
    return table[torch.where(known, labels, len(palette))]
