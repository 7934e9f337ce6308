"""The shipped paper trees (hl_lightning/hierarchies) equal the paper's own files.

The only module that reads ``../shared/seed-hierarchies`` (the authors' files, kept beside
the repository, not in it); it skips where that folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hl_lightning import Hierarchy
from hl_lightning.hierarchies import helen_hierarchy, mapillary_paper_hierarchy

SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "seed-hierarchies"

pytestmark = pytest.mark.skipif(
    not SEED_DIR.is_dir(), reason=f"seed hierarchies not found at {SEED_DIR}"
)


def test_shipped_faces_tree_equals_the_papers_file() -> None:
    paper = Hierarchy.from_file(SEED_DIR / "faces_tree.txt")
    assert helen_hierarchy().with_level_names(paper.level_names) == paper


def test_shipped_vistas_tree_equals_the_papers_file() -> None:
    paper = Hierarchy.from_file(SEED_DIR / "mapillary_tree.txt")
    assert mapillary_paper_hierarchy().with_level_names(paper.level_names) == paper


def test_the_papers_files_are_the_conftest_copies(paper_trees: Path) -> None:
    for name in ("faces_tree.txt", "mapillary_tree.txt"):
        assert (paper_trees / name).read_text() == (SEED_DIR / name).read_text()
