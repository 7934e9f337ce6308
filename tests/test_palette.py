"""Tests for hl_lightning/palette.py: per-level palettes and label-map colouring."""

from __future__ import annotations

import colorsys
from itertools import pairwise
from pathlib import Path

import pytest
import torch

from hl_lightning.data import synthetic_hierarchy
from hl_lightning.decode import level_parents
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.palette import colorize, level_palettes, node_palette


def hue(rgb: list[int]) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0]


def hue_distance(a: float, b: float) -> float:
    return min(abs(a - b), 1 - abs(a - b))


@pytest.fixture(params=["synthetic", "small", "flat", "faces", "mapillary"])
def hierarchy(request: pytest.FixtureRequest) -> Hierarchy:
    """The built-in tree, a tiny one, a wide flat one and the paper's two seed trees."""
    if request.param in ("faces", "mapillary"):
        paper_trees: Path = request.getfixturevalue("paper_trees")
        return Hierarchy.from_file(paper_trees / f"{request.param}_tree.txt")
    return {
        "synthetic": synthetic_hierarchy,
        "small": lambda: Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]}),
        "flat": lambda: Hierarchy.flat([f"c{i}" for i in range(20)]),
    }[request.param]()


def test_one_uint8_palette_per_level_with_distinct_colours(hierarchy: Hierarchy) -> None:
    palettes = level_palettes(hierarchy)
    assert len(palettes) == hierarchy.num_levels
    for level, palette in enumerate(palettes):
        assert palette.dtype == torch.uint8
        assert palette.shape == (hierarchy.num_groups(level), 3)
        colours = [tuple(c) for c in palette.tolist()]
        assert len(set(colours)) == len(colours), f"level {level} repeats a colour"
        assert (0, 0, 0) not in colours  # black is for ignored pixels


def test_children_are_shades_of_their_parent(hierarchy: Hierarchy) -> None:
    palettes = level_palettes(hierarchy)
    top_hues = [hue(c) for c in palettes[0].tolist()]
    groups = hierarchy.level_matrix()  # (D, K): every leaf's group at every level
    for level in range(1, hierarchy.num_levels):
        for group, colour in enumerate(palettes[level].tolist()):
            leaf = int((groups[level] == group).nonzero()[0])
            own = int(groups[0, leaf])  # the group's level-0 ancestor
            distances = [hue_distance(hue(colour), h) for h in top_hues]
            others = [d for i, d in enumerate(distances) if i != own]
            assert all(distances[own] < d for d in others), (level, group)
    for level, parents in enumerate(level_parents(hierarchy)):
        for child, parent in enumerate(parents.tolist()):
            child_hue = hue(palettes[level + 1][child].tolist())
            parent_hue = hue(palettes[level][parent].tolist())
            assert hue_distance(child_hue, parent_hue) <= 0.5 / hierarchy.num_groups(0)


def test_single_child_keeps_the_parent_colour() -> None:
    h = synthetic_hierarchy()
    palettes = level_palettes(h)
    for level in range(1, h.num_levels):  # background and sky stand for themselves below
        for name in ("background", "sky") if level == 2 else ("background",):
            below = palettes[level][h.group_names(level).index(name)]
            above = palettes[level - 1][h.group_names(level - 1).index(name)]
            assert below.tolist() == above.tolist()


def test_siblings_alternate_lighter_and_darker() -> None:
    h = Hierarchy.from_dict({"a": ["a1", "a2", "a3", "a4"], "b": ["b1", "b2"]})
    palette = level_palettes(h)[1].tolist()
    a1, a2, a3, a4 = (colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[2] for rgb in palette[:4])
    assert a1 > a2 < a3 > a4  # neighbouring hues differ in lightness


def test_level0_hues_are_well_separated() -> None:
    palette = level_palettes(Hierarchy.flat(["a", "b", "c", "d"]))[0]
    hues = sorted(hue(c) for c in palette.tolist())
    gaps = [b - a for a, b in pairwise(hues)] + [1 - hues[-1] + hues[0]]
    assert min(gaps) == pytest.approx(0.25, abs=0.01)


def test_colorize_maps_groups_and_blacks_out_other_values() -> None:
    palette = torch.tensor([[10, 20, 30], [40, 50, 60]], dtype=torch.uint8)
    labels = torch.tensor([[[0, 1], [255, -1]]], dtype=torch.int64)
    image = colorize(labels, palette)
    assert image.shape == (1, 2, 2, 3) and image.dtype == torch.uint8
    assert image[0, 0].tolist() == [[10, 20, 30], [40, 50, 60]]
    assert image[0, 1].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert colorize(labels.to(torch.uint8).clamp(0, 1), palette).shape == (1, 2, 2, 3)


def test_every_node_gets_its_groups_colour_at_its_own_level(hierarchy: Hierarchy) -> None:
    """A leaf: its finest-level colour; an internal node: its group's at its depth."""
    palettes, nodes = level_palettes(hierarchy), node_palette(hierarchy)
    assert nodes.dtype == torch.uint8 and nodes.shape == (hierarchy.num_nodes, 3)
    for node, name in enumerate(hierarchy.node_names):
        level = hierarchy.node_level(node)
        group = hierarchy.group_names(level).index(name)
        assert nodes[node].tolist() == palettes[level][group].tolist(), name
