"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SEED_DIR = Path(__file__).resolve().parents[2] / "shared" / "seed-hierarchies"


@pytest.fixture
def seed_dir() -> Path:
    """Return the folder of the paper's seed hierarchies; skip when it is absent."""
    if not SEED_DIR.is_dir():
        pytest.skip(f"seed hierarchies not found at {SEED_DIR}")
    return SEED_DIR


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run on one torch thread, then restore the previous count: for tests of tiny tensors,
    where on a busy machine two threads waiting for each other make every small op slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
