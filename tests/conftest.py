"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "seed-hierarchies"


@pytest.fixture
def seed_dir() -> Path:
    """Return the folder of the paper's seed hierarchies; skip when it is absent."""
    if not SEED_DIR.is_dir():
        pytest.skip(f"seed hierarchies not found at {SEED_DIR}")
    return SEED_DIR
