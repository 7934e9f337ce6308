"""Time one update of the hierarchical metrics against one MulticlassJaccardIndex update.

Cases: the Mapillary tree (K = 66; ``seed-hierarchies/mapillary_tree.txt`` if present,
else a random tree with 66 leaves) at B=4, 128x128, and a random 1000-leaf depth-6 tree
at B=2, 64x64. Every candidate gets the same logits and target; candidates are timed in
turn (round robin) after a warm-up, and the table reports the median (and the minimum)
of the repeats and the ratio to MulticlassJaccardIndex (MJI) measured in the same run.
The last line is JSON. On a busy machine ``--threads 1`` gives steadier numbers.

    python scripts/bench_metrics.py [--repeats 15] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassJaccardIndex

from hl_lightning import Hierarchy
from hl_lightning.metrics import HierarchicalJaccardIndex, MistakeSeverity

MAPILLARY = (
    Path(__file__).resolve().parents[2] / "shared" / "seed-hierarchies" / "mapillary_tree.txt"
)


def random_hierarchy(num_leaves: int, num_levels: int, seed: int = 0) -> Hierarchy:
    """Return a random tree: about K**((d+1)/D) groups at level d, some shallow leaves."""
    rng = random.Random(seed)
    nodes: list[tuple[str, dict | None]] = [(f"c{i}", None) for i in range(num_leaves)]
    for d in range(num_levels - 2, -1, -1):
        groups = min(len(nodes), max(2, round(num_leaves ** ((d + 1) / num_levels))))
        cuts = sorted(rng.sample(range(1, len(nodes)), groups - 1))
        chunks = [nodes[a:b] for a, b in zip([0, *cuts], [*cuts, len(nodes)], strict=True)]
        nodes = [
            chunk[0]
            if i and len(chunk) == 1 and chunk[0][1] is None and rng.random() < 0.5
            else (f"g{d}_{i}", dict(chunk))
            for i, chunk in enumerate(chunks)
        ]
    return Hierarchy.from_dict(dict(nodes))


def time_ms(
    candidates: dict[str, Callable[[], None]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Return (median, min) wall time in ms of each candidate, timed round robin after a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for run in range(repeats + 2):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            if run >= 2:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def bench_case(
    hierarchy: Hierarchy, batch: int, size: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """Return the (median, min) update time in ms of every metric on one random batch."""
    gen = torch.Generator().manual_seed(0)
    k = hierarchy.num_leaves
    logits = 3 * torch.randn(batch, k, size, size, generator=gen)
    target = torch.randint(0, k, (batch, size, size), generator=gen)
    ignore = 255 if k <= 255 else -1  # an id that is not a leaf
    target[torch.rand(target.shape, generator=gen) < 0.05] = ignore
    metrics: dict[str, Metric] = {
        "MulticlassJaccardIndex": MulticlassJaccardIndex(k, ignore_index=ignore)
    }
    for method in ("leaf", "marginal", "top_down"):
        metrics[f"HierarchicalJaccardIndex[{method}]"] = HierarchicalJaccardIndex(
            hierarchy, ignore_index=ignore, decode=method
        )
    metrics["MistakeSeverity"] = MistakeSeverity(hierarchy, ignore_index=ignore)
    return time_ms(
        {name: (lambda m=m: m.update(logits, target)) for name, m in metrics.items()}, repeats
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per candidate")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if MAPILLARY.exists():
        mapillary, tree = Hierarchy.from_file(MAPILLARY), "mapillary_tree.txt"
    else:
        mapillary, tree = random_hierarchy(66, 3), "random K=66"
    cases = [
        (f"{tree} B=4 128x128", mapillary, 4, 128),
        ("random K=1000 D=6 B=2 64x64", random_hierarchy(1000, 6), 2, 64),
    ]
    results = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    for label, hierarchy, batch, size in cases:
        groups = [hierarchy.num_groups(d) for d in range(hierarchy.num_levels)]
        print(f"\n{label}: groups per level {groups}")
        times = bench_case(hierarchy, batch, size, args.repeats)
        base, base_min = times["MulticlassJaccardIndex"]
        print(f"  {'update of':38s} {'median ms':>10s} {'x MJI':>6s} {'min ms':>8s} {'x MJI':>6s}")
        results[label] = {}
        for name, (ms, best) in times.items():
            ratio, ratio_min = ms / base, best / base_min
            print(f"  {name:38s} {ms:10.2f} {ratio:6.2f} {best:8.2f} {ratio_min:6.2f}")
            results[label][name] = {
                "ms": ms,
                "ratio": ratio,
                "min_ms": best,
                "min_ratio": ratio_min,
            }
    print(json.dumps({"threads": torch.get_num_threads(), "repeats": args.repeats, **results}))


if __name__ == "__main__":
    main()
