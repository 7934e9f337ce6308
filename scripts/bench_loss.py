"""Benchmark the hierarchical losses (forward + backward) against cross-entropy.

Cases: the paper's Mapillary tree (K=66, from ../shared/seed-hierarchies when present,
else a random 66-leaf, 3-level tree) and a random 1000-leaf, 6-level tree; B=4, 128x128.
Methods: ``cross_entropy`` (F.cross_entropy, the baseline), ``hierarchical``
(hl_lightning.losses.hierarchical_nll summed over levels), ``paper`` (the published
implementation's approach: a Python loop over groups with torch.cat and log(p + 1e-4)),
and the rest of the family built by hl_lightning.losses.build_loss: ``hierarchical_cw``
(the hierarchical loss with random per-level class weights), ``flat`` (FlatLoss),
``hxe`` (alpha=0.5),
``soft_labels`` (beta=10) and ``tree_min`` (gamma=2, on N node logits instead of K).
Time is the median of repeated runs, the methods timed in interleaved rounds; peak
memory is measured once per method in a fresh process (on the CPU from the peak
resident set size). Prints a table and a JSON line. On a busy machine ``--threads 1``
gives steadier ratios (with two threads, every step that waits for a descheduled thread
counts). glibc's allocator is made to keep freed memory for reuse first (``_timing.
steady_allocator``): otherwise whether a step's tens of MiB of buffers are reused or
faulted in page by page depends on what ran before in the process, and cross-entropy's
time moved between about 7 and 11 ms from run to run; ``--system-allocator`` leaves it be.

    python scripts/bench_loss.py [--device cuda] [--repeats 15] [--threads N] [--methods hxe ...]
        [--json f] [--system-allocator]

``--baseline REV`` compares this tree's losses with those of a git revision in the same run:
REV is exported with ``git archive`` to a temporary folder, and each round runs one child
process per tree (PYTHONPATH pointing at it; their order alternating from round to round)
that times every method; the table gives the medians over ``--rounds`` rounds and the
ratios new / baseline (``paper`` is left out: it is no code of the package). Leaf labels
only: the path every batch without coarse labels takes.

    python scripts/bench_loss.py --baseline main --rounds 7 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from _timing import median_seconds_each, peak_memory_bytes, steady_allocator

from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.losses import LossName, TreeMinLoss, build_loss, hierarchical_nll

ROOT = Path(__file__).resolve().parents[1]
SEED_DIR = ROOT.parent / "shared" / "seed-hierarchies"
CASES = {"mapillary": (66, 3), "random1000": (1000, 6)}
METHODS = (
    "cross_entropy",
    "hierarchical",
    "paper",
    "hierarchical_cw",
    "flat",
    "hxe",
    "soft_labels",
    "tree_min",
)
# the options of the losses built by build_loss (the method name, less a suffix)
OPTIONS = {"hxe": {"alpha": 0.5}, "soft_labels": {"beta": 10.0}, "tree_min": {"gamma": 2.0}}


def case_hierarchy(case: str) -> Hierarchy:
    """Return the hierarchy of a benchmark case."""
    if case == "mapillary" and (SEED_DIR / "mapillary_tree.txt").exists():
        return Hierarchy.from_file(SEED_DIR / "mapillary_tree.txt")
    leaves, depth = CASES[case]
    return random_hierarchy(leaves, depth, seed=0)


def paper_loss(logits: torch.Tensor, target: torch.Tensor, h: Hierarchy) -> torch.Tensor:
    """Return the loss as the paper's published code computes it (the slow reference)."""
    probs = torch.softmax(logits, dim=1)
    total = logits.new_zeros(())
    for d in range(h.num_levels):
        index = h.level_index(d).tolist()
        members = [[k for k, g in enumerate(index) if g == j] for j in range(max(index) + 1)]
        grouped = torch.cat([probs[:, m].sum(1, keepdim=True) for m in members], dim=1)
        total = total + F.nll_loss(torch.log(grouped + 1e-4), h.labels_at_level(target, d))
    return total


def family_loss(method: str, h: Hierarchy, device: torch.device) -> torch.nn.Module:
    """Return the loss of a family method, built by name as HierarchicalSegmenter does."""
    if method == "hierarchical_cw":
        gen = torch.Generator().manual_seed(1)
        weights = [torch.rand(h.num_groups(d), generator=gen).tolist() for d in range(h.num_levels)]
        return build_loss("hierarchical", h, None, class_weights=weights).to(device)
    return build_loss(cast(LossName, method), h, None, **OPTIONS.get(method, {})).to(device)


def make_step(method: str, h: Hierarchy, batch: int, size: int, device: torch.device):
    """Return a closure running one forward + backward of ``method`` on fixed random input."""
    gen = torch.Generator().manual_seed(0)
    criterion = (
        None
        if method in ("cross_entropy", "hierarchical", "paper")
        else family_loss(method, h, device)
    )
    channels = criterion.num_nodes if isinstance(criterion, TreeMinLoss) else h.num_leaves
    logits = torch.randn(batch, channels, size, size, generator=gen).to(device)
    logits.requires_grad_()
    target = torch.randint(0, h.num_leaves, (batch, size, size), generator=gen).to(device)
    losses: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "cross_entropy": lambda t: F.cross_entropy(logits, t),
        "hierarchical": lambda t: hierarchical_nll(logits, t, h).sum(),
        "paper": lambda t: paper_loss(logits, t, h),
    }
    loss_fn = losses[method] if criterion is None else partial(criterion, logits)

    def step() -> None:
        logits.grad = None
        # a new target tensor each step, as from a data loader: the package reads a
        # target's label ids once per tensor (hl_lightning.label_ids)
        loss_fn(target.clone()).backward()

    return step


def setting_args(args: argparse.Namespace) -> list[str]:
    """Return the command-line arguments that give a child process this run's settings."""
    threads = ["--threads", str(args.threads)] if args.threads else []
    allocator = ["--system-allocator"] if args.system_allocator else []
    settings = ["--device", args.device, "--batch", str(args.batch), "--size", str(args.size)]
    return [*settings, *threads, *allocator]


def measure_memory(case: str, method: str, args: argparse.Namespace) -> int:
    """Return the peak memory of one step, measured in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-of", case, method, *setting_args(args)]
    return int(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())


def export_revision(revision: str, folder: Path) -> Path:
    """Return ``folder`` holding the files of git ``revision`` of this repository."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def child_times(tree: Path, args: argparse.Namespace, methods: list[str]) -> dict[str, Any]:
    """Return the times of one child process importing hl_lightning from ``tree``."""
    cmd = [sys.executable, __file__, "--time-in-child", "--cases", *args.cases]
    cmd += ["--methods", *methods, "--repeats", str(args.repeats), *setting_args(args)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.setdefault("OMP_NUM_THREADS", str(args.threads or 1))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def time_in_child(args: argparse.Namespace, device: torch.device) -> None:
    """Print the median seconds of every case and method, and the package timed, as JSON."""
    import hl_lightning

    times = {}
    for case in args.cases:
        h = case_hierarchy(case)
        steps = {m: make_step(m, h, args.batch, args.size, device) for m in args.methods}
        times[case] = median_seconds_each(steps, args.repeats)
    print(json.dumps({"package": hl_lightning.__file__, "times": times}))


def compare_with_baseline(args: argparse.Namespace) -> None:
    """Time this tree against git revision ``args.baseline`` in interleaved child processes."""
    methods = [m for m in args.methods if m != "paper"]
    samples: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"new": ROOT, "baseline": export_revision(args.baseline, Path(tmp))}
        packages = {}
        for round_ in range(args.rounds):
            order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
            for name in order:
                result = child_times(trees[name], args, methods)
                packages[name] = result["package"]
                for case, times in result["times"].items():
                    for method, seconds in times.items():
                        samples.setdefault((name, case, method), []).append(seconds)
    print(
        f"fwd+bwd, B={args.batch}, {args.size}x{args.size}, device={args.device}, "
        f"threads={args.threads or 'default'}; median of {args.rounds} interleaved rounds "
        f"(each a median of {args.repeats}); baseline {args.baseline}"
    )
    for name, package in packages.items():
        print(f"  {name}: {package}")
    print(f"{'case':<11} {'method':<16} {'new ms':>9} {'base ms':>9} {'new/base':>9}")
    rows = []
    for case in args.cases:
        for method in methods:
            new = statistics.median(samples[("new", case, method)])
            base = statistics.median(samples[("baseline", case, method)])
            rows.append(
                {
                    "case": case,
                    "method": method,
                    "new_ms": new * 1e3,
                    "baseline_ms": base * 1e3,
                    "ratio": new / base,
                }
            )
            print(
                f"{case:<11} {method:<16} {new * 1e3:>9.2f} {base * 1e3:>9.2f} {new / base:>9.3f}"
            )
    result = {"baseline": args.baseline, "rounds": args.rounds, "rows": rows}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


def _ratio(value: float | None) -> str:
    """Return a ratio as the table shows it, ``-`` where there is none."""
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--paper-max-leaves", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--system-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (by default it keeps freed memory for reuse)",
    )
    parser.add_argument("--memory-of", nargs=2, metavar=("CASE", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--baseline", metavar="REV", help="compare with this git revision")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (--baseline)")
    parser.add_argument("--time-in-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    steady = not args.system_allocator and steady_allocator()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.time_in_child:  # child process of --baseline: time every method once
        time_in_child(args, device)
        return
    if args.baseline:
        compare_with_baseline(args)
        return
    if args.memory_of:  # child process: one step, print its peak memory
        case, method = args.memory_of
        make_step("cross_entropy", Hierarchy.flat(["a", "b"]), 1, 8, device)()  # lazy init
        step = make_step(method, case_hierarchy(case), args.batch, args.size, device)
        print(peak_memory_bytes(step, device))
        return

    rows = []
    for case in args.cases:
        h = case_hierarchy(case)
        methods = ["cross_entropy", *(m for m in args.methods if m != "cross_entropy")]
        if h.num_leaves > args.paper_max_leaves and "paper" in methods:
            methods.remove("paper")  # one full-size gradient buffer per group: hours at K=1000
        steps = {m: make_step(m, h, args.batch, args.size, device) for m in methods}
        times = median_seconds_each(steps, args.repeats)
        del steps
        base_time, base_mem = times["cross_entropy"], None
        for method in methods:
            seconds = times[method]
            memory = measure_memory(case, method, args)
            base_mem = memory if base_mem is None else base_mem
            rows.append(
                {
                    "case": case,
                    "leaves": h.num_leaves,
                    "levels": h.num_levels,
                    "groups": [h.num_groups(d) for d in range(h.num_levels)],
                    "method": method,
                    "ms": round(seconds * 1e3, 2),
                    "time_vs_ce": round(seconds / base_time, 2),
                    "peak_mib": round(memory / 2**20, 1),
                    # None where cross-entropy's step took no new page (tiny sizes)
                    "memory_vs_ce": round(memory / base_mem, 2) if base_mem else None,
                }
            )
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"fwd+bwd, B={args.batch}, {args.size}x{args.size}, device={device_name}, "
        f"threads={torch.get_num_threads()}, torch {torch.__version__}, "
        f"allocator={'steady' if steady else 'system'}"
    )
    print(f"{'case':<11} {'K':>5} {'method':<16} {'ms':>9} {'x CE':>6} {'peak MiB':>9} {'x CE':>6}")
    for r in rows:
        print(
            f"{r['case']:<11} {r['leaves']:>5} {r['method']:<16} {r['ms']:>9.2f} "
            f"{r['time_vs_ce']:>6.2f} {r['peak_mib']:>9.1f} {_ratio(r['memory_vs_ce']):>6}"
        )
    result = {
        "device": device_name,
        "threads": torch.get_num_threads(),
        "allocator": "steady" if steady else "system",
        "batch": args.batch,
        "size": args.size,
        "rows": rows,
    }
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
