"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from hl_lightning import Hierarchy
from hl_lightning.hierarchies import helen_hierarchy, mapillary_paper_hierarchy
from hl_lightning.hierarchies.random import random_hierarchy


def write_indented(hierarchy: Hierarchy, path: Path) -> Path:
    """Write ``hierarchy`` in the paper's indented text format (one tab per level); return path."""
    lines = []
    stack = [(node, 0) for node in reversed(hierarchy.roots)]
    while stack:
        node, depth = stack.pop()
        lines.append("\t" * depth + node.name)
        stack.extend((child, depth + 1) for child in reversed(node.children))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def paper_trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder with the paper's two trees in its indented text format, written from
    the shipped copies: ``faces_tree.txt`` (Helen) and ``mapillary_tree.txt`` (Vistas)."""
    folder = tmp_path_factory.mktemp("paper_trees")
    write_indented(helen_hierarchy(), folder / "faces_tree.txt")
    write_indented(mapillary_paper_hierarchy(), folder / "mapillary_tree.txt")
    return folder


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a folder that outlives the examples of one property test (tmp_path does not)."""
    return tmp_path_factory.mktemp("trees")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one torch thread, then restore the previous count: for tests of tiny tensors,
    where on a busy machine two threads waiting for each other make every small op slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run() -> list[str]:
    """Return the hl-train overrides of a seconds-long run: tiny synthetic data and U-Net,
    one epoch, CSV logging only."""
    return [
        "experiment=quick",
        "data.num_train=16",
        "data.num_val=8",
        "data.num_test=8",
        "data.image_size=32",
        "backbone.width=4",
        "logger=csv",
    ]


@pytest.fixture(scope="session")
def hl_train() -> str:
    """Return the path of the hl-train console script; skip where it is not installed."""
    script = Path(sys.executable).with_name("hl-train")
    if not script.exists():
        pytest.skip(f"the hl-train console script is not installed next to {sys.executable}")
    return str(script)


@pytest.fixture(params=[(5, 2), (11, 4), (30, 3), (40, 5)], ids=lambda p: f"K{p[0]}-D{p[1]}")
def random_tree(request: pytest.FixtureRequest) -> Hierarchy:
    """Return a random tree with shuffled leaves, for each (leaves, levels) of the params."""
    num_leaves, num_levels = request.param
    return random_hierarchy(num_leaves, num_levels, seed=num_leaves, shuffle_leaves=True)


@pytest.fixture(params=["faces_tree.txt", "mapillary_tree.txt"])
def seed_tree(request: pytest.FixtureRequest, paper_trees: Path) -> Hierarchy:
    """Return each of the paper's two trees, read from its indented text file."""
    return Hierarchy.from_file(paper_trees / request.param)
