"""Tests for scripts/_timing.py (the benchmarks' measuring helpers) and
hl_lightning/hierarchies/random.py (the random trees of the tests and benchmarks)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hl_lightning.hierarchies.random import random_hierarchy

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from _timing import median_seconds, median_seconds_each  # noqa: E402


@pytest.mark.parametrize(
    ("num_leaves", "depth"),
    [(n, d) for n in (2, 3, 16, 37) for d in (1, 2, 3, 5) if n >= 2 ** (d - 1)],
)
def test_random_hierarchy_has_exactly_the_asked_leaves_and_depth(num_leaves, depth):
    for seed in range(4):
        h = random_hierarchy(num_leaves, depth, seed=seed)
        assert (h.num_leaves, h.num_levels) == (num_leaves, depth)


def test_random_hierarchy_is_deterministic_unbalanced_and_can_shuffle_labels():
    h = random_hierarchy(1000, 6)
    assert h == random_hierarchy(1000, 6)
    assert [h.num_groups(d) for d in range(6)] == [4, 9, 26, 82, 270, 1000]  # bench's tree
    leaf_depths = {
        next(d for d in range(6) if h.group_names(d)[h.level_index(d)[i]] == leaf)
        for i, leaf in enumerate(h.leaves)
    }
    assert len(leaf_depths) > 1  # unbalanced: leaves at several depths
    shuffled = random_hierarchy(40, 3, seed=2, shuffle_leaves=True)
    assert shuffled.leaves != random_hierarchy(40, 3, seed=2).leaves
    assert sorted(shuffled.leaves) == sorted(random_hierarchy(40, 3, seed=2).leaves)


def test_random_hierarchy_refuses_impossible_depth():
    with pytest.raises(ValueError, match="depth 4 with 5 leaves"):
        random_hierarchy(5, 4)


def test_median_seconds_and_peak_memory_measure_the_call():
    assert median_seconds(lambda: None, repeats=3, warmup=0) >= 0.0
    assert sorted(median_seconds_each({"b": lambda: None, "a": lambda: None}, 2)) == ["a", "b"]
    # in a fresh process, as the helper says: freed memory a long test session keeps
    # resident would be reused without raising the peak
    probe = (
        "import torch; from _timing import peak_memory_bytes; "
        "print(peak_memory_bytes(lambda: torch.ones(2**24).add_(1), torch.device('cpu')))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SCRIPTS)}
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert int(result.stdout) >= 2**26 * 0.9  # 64 MiB of float32 touched


@pytest.mark.slow
def test_the_loss_benchmark_steadies_the_allocator_and_says_so(tmp_path):
    # a tiny run of the real script (its child process for memory included): the header
    # and the JSON say which allocator the times were taken with
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "bench.json"
    command = [sys.executable, str(SCRIPTS / "bench_loss.py"), "--cases", "mapillary"]
    command += ["--methods", "cross_entropy", "--batch", "1", "--size", "8", "--repeats", "1"]
    result = subprocess.run([*command, "--json", str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "allocator=steady" in result.stdout.splitlines()[0]
    rows = json.loads(out.read_text())
    assert rows["allocator"] == "steady"
    assert [r["method"] for r in rows["rows"]] == ["cross_entropy"]


def test_the_loss_benchmarks_children_keep_the_allocator_setting():
    from bench_loss import setting_args

    args = argparse.Namespace(device="cpu", batch=1, size=8, threads=1, system_allocator=True)
    assert "--system-allocator" in setting_args(args)
    args.system_allocator = False
    assert "--system-allocator" not in setting_args(args)
