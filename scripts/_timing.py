"""Timing and memory helpers of the benchmarks: interleaved medians, peak memory of a call."""

from __future__ import annotations

import ctypes
import gc
import re
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["median_seconds", "median_seconds_each", "peak_memory_bytes", "steady_allocator"]

# glibc's mallopt parameters
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


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


def steady_allocator() -> bool:
    """Make glibc keep freed memory for reuse (no trimming; blocks below 32 MiB from the
    heap, not from fresh mappings); return whether it could (False off glibc).

    By default glibc decides from the history of the process whether a large tensor's
    buffer comes back from its heap or as fresh pages, each page then faulted in: a step
    that allocates tens of MiB took 7 or 11 ms in the same run depending on what had run
    before it. With this, every method is timed with reused memory. Call it first.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    )


def _status_kib(field: str) -> int:
    """Return a memory field of /proc/self/status, in KiB."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}: peak memory needs Linux")
    return int(match.group(1))
