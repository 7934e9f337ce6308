"""Benchmark helpers: random hierarchies, median timings and peak memory of a call."""

from __future__ import annotations

import gc
import random
import re
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from hl_lightning.hierarchy import Hierarchy, Node

__all__ = ["median_seconds", "median_seconds_each", "peak_memory_bytes", "random_hierarchy"]


def random_hierarchy(
    num_leaves: int, depth: int, seed: int = 0, shuffle_leaves: bool = False
) -> Hierarchy:
    """Return a random unbalanced hierarchy with exactly ``num_leaves`` leaves and ``depth`` levels.

    Branching is about ``num_leaves ** (1 / depth)`` per node; a part of size one above the
    deepest level becomes a shallow leaf, so leaves sit at several depths. Label ids follow
    the tree order, or with ``shuffle_leaves`` a random order (the same tree either way).

    Example:
        >>> h = random_hierarchy(1000, 6)
        >>> h.num_leaves, h.num_levels
        (1000, 6)
        >>> random_hierarchy(8, 2, shuffle_leaves=True).level_index(-1).tolist() != list(range(8))
        True
    """
    if num_leaves < 2 or depth < 1 or num_leaves < 2 ** (depth - 1):
        raise ValueError(f"cannot build a tree of depth {depth} with {num_leaves} leaves")
    rng = random.Random(seed)
    counter = {"group": 0, "leaf": 0}

    def name(kind: str) -> str:
        counter[kind] += 1
        return f"{kind}{counter[kind] - 1}"

    def split(n: int, levels: int, deep: bool) -> list[Node]:
        if levels == 1:
            return [Node(name("leaf")) for _ in range(n)]
        if n == 1:  # the deep branch with one leaf left: a chain of single-child groups
            return [Node(name("group"), tuple(split(1, levels - 1, deep)))]
        width = round(n ** (1 / levels) * rng.uniform(0.7, 1.3))
        width = max(2, min(width, n // 2 ** (levels - 1) if deep else n))
        cuts = sorted(rng.sample(range(1, n), width - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
        sizes.sort(reverse=True)  # the first part is the largest: it carries the full depth
        nodes = []
        for i, size in enumerate(sizes):
            if size == 1 and not (deep and i == 0):
                nodes.append(Node(name("leaf")))
            else:
                nodes.append(Node(name("group"), tuple(split(size, levels - 1, deep and i == 0))))
        return nodes

    hierarchy = Hierarchy(split(num_leaves, depth, True))
    if shuffle_leaves:
        leaves = list(hierarchy.leaves)
        rng.shuffle(leaves)
        hierarchy = hierarchy.reorder(leaves)
    return hierarchy


def median_seconds(fn: Callable[[], Any], repeats: int = 10, warmup: int = 2) -> float:
    """Return the median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    CUDA work is synchronised before each clock read.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_seconds_each(
    fns: Mapping[str, Callable[[], Any]], repeats: int = 10, warmup: int = 2
) -> dict[str, float]:
    """Return the median wall time of each function, timed in interleaved rounds.

    Every round runs each function once, so a change in machine load during the
    measurement shifts all of them alike and the ratios between them stay meaningful.

    Example:
        >>> times = median_seconds_each({"a": lambda: None, "b": lambda: None}, repeats=3)
        >>> sorted(times)
        ['a', 'b']
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(median_seconds(fn, repeats=1, warmup=0))
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory_bytes(fn: Callable[[], Any], device: torch.device) -> int:
    """Return the peak memory ``fn()`` allocates above what is live before the call.

    On CUDA, from the caching allocator's statistics. On the CPU (Linux), from the process's
    peak resident set size, reset just before the call; memory the C allocator kept from
    earlier calls is reused without showing up, so measure in a fresh process.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) - before
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current size
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def _status_kib(field: str) -> int:
    """Return a memory field of /proc/self/status, in KiB."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}: peak memory needs Linux")
    return int(match.group(1))
