"""Time one update of the hierarchical metrics against one MulticlassJaccardIndex update.

"all validation metrics" is the module's validation MetricCollection: one
HierarchicalSegmentationMetrics (mIoU, accuracy, severity, calibration, consistency and
the hierarchical precision and recall at 0.5 from one check and one pass over the
logits). "the same, as separate metrics" is the MetricCollection of the five standalone
metrics (mIoU and accuracy sharing a state) that the module used before: what sharing
the pass saves, in the same run. ``crm / marginal`` compares the two decodings'
HierarchicalJaccardIndex updates.

Cases: the Mapillary tree (K = 66; ``seed-hierarchies/mapillary_tree.txt`` if present,
else a random tree with 66 leaves) at B=4, 128x128, and a random 1000-leaf depth-6 tree
at B=2, 64x64 (``hl_lightning.hierarchies.random.random_hierarchy``). Every candidate gets the
same logits and target (a new copy of the target per call, as from a data loader); the
table reports the median time of the repeats after a warm-up
(``_timing.median_seconds_each``: interleaved rounds) and the ratio to
MulticlassJaccardIndex (MJI) measured in the same run. The last line is JSON. On a
busy machine ``--threads 1`` gives steadier numbers. As in ``bench_loss.py``, glibc's
allocator is first made to keep freed memory for reuse (``--system-allocator``: not).

    python scripts/bench_metrics.py [--repeats 15] [--threads N] [--system-allocator]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _timing import median_seconds_each, steady_allocator
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassJaccardIndex

from hl_lightning import Hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.lightning import HierarchicalSegmenter
from hl_lightning.metrics import (
    HierarchicalCalibrationError,
    HierarchicalConsistency,
    HierarchicalJaccardIndex,
    HierarchicalOperatingCurve,
    HierarchicalPixelAccuracy,
    HierarchicalPrecisionRecall,
    MistakeSeverity,
)

MAPILLARY = (
    Path(__file__).resolve().parents[2] / "shared" / "seed-hierarchies" / "mapillary_tree.txt"
)


def bench_case(hierarchy: Hierarchy, batch: int, size: int, repeats: int) -> dict[str, float]:
    """Return the median update time in ms of every metric on one random batch."""
    gen = torch.Generator().manual_seed(0)
    k = hierarchy.num_leaves
    logits = 3 * torch.randn(batch, k, size, size, generator=gen)
    target = torch.randint(0, k, (batch, size, size), generator=gen)
    ignore = 255 if k <= 255 else -1  # an id that is not a leaf
    target[torch.rand(target.shape, generator=gen) < 0.05] = ignore
    metrics: dict[str, Metric] = {
        "MulticlassJaccardIndex": MulticlassJaccardIndex(k, ignore_index=ignore)
    }
    for method in ("leaf", "marginal", "top_down", "crm"):
        metrics[f"HierarchicalJaccardIndex[{method}]"] = HierarchicalJaccardIndex(
            hierarchy, ignore_index=ignore, decode=method
        )
    metrics["MistakeSeverity"] = MistakeSeverity(hierarchy, ignore_index=ignore)
    metrics["HierarchicalCalibrationError"] = HierarchicalCalibrationError(hierarchy, ignore)
    metrics["HierarchicalConsistency"] = HierarchicalConsistency(hierarchy, ignore)
    metrics["HierarchicalPrecisionRecall"] = HierarchicalPrecisionRecall(hierarchy, 0.5, ignore)
    metrics["HierarchicalOperatingCurve[50]"] = HierarchicalOperatingCurve(hierarchy, 50, ignore)

    def on_a_new_target(update: Callable[[torch.Tensor, torch.Tensor], object]):
        # a new target tensor each call, as from a data loader: the package reads a
        # target's label ids once per tensor (hl_lightning.label_ids)
        return lambda: update(logits, target.clone())

    updates = {name: on_a_new_target(m.update) for name, m in metrics.items()}
    val = HierarchicalSegmenter(torch.nn.Identity(), hierarchy, ignore_index=ignore).val_metrics
    updates["all validation metrics"] = on_a_new_target(val.update)
    separate = MetricCollection(
        {
            "miou": HierarchicalJaccardIndex(hierarchy, ignore),
            "acc": HierarchicalPixelAccuracy(hierarchy, ignore),
            "severity": MistakeSeverity(hierarchy, ignore),
            "ece": HierarchicalCalibrationError(hierarchy, ignore),
            "inconsistency": HierarchicalConsistency(hierarchy, ignore),
        },
        compute_groups=[["miou", "acc"], ["severity"], ["ece"], ["inconsistency"]],
    )
    updates["the same, as separate metrics"] = on_a_new_target(separate.update)
    return {name: 1e3 * t for name, t in median_seconds_each(updates, repeats).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per candidate")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--system-allocator",
        action="store_true",
        help="leave glibc's allocator as it is (by default it keeps freed memory for reuse)",
    )
    args = parser.parse_args()
    allocator = "system" if args.system_allocator or not steady_allocator() else "steady"
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
    results: dict[str, dict[str, Any]] = {}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of "
        f"{args.repeats}, allocator={allocator}"
    )
    for label, hierarchy, batch, size in cases:
        groups = [hierarchy.num_groups(d) for d in range(hierarchy.num_levels)]
        print(f"\n{label}: groups per level {groups}")
        times = bench_case(hierarchy, batch, size, args.repeats)
        base = times["MulticlassJaccardIndex"]
        print(f"  {'update of':38s} {'median ms':>10s} {'x MJI':>6s}")
        results[label] = {}
        for name, ms in times.items():
            print(f"  {name:38s} {ms:10.2f} {ms / base:6.2f}")
            results[label][name] = {"ms": ms, "ratio": ms / base}
        crm = times["HierarchicalJaccardIndex[crm]"] / times["HierarchicalJaccardIndex[marginal]"]
        print(f"  crm / marginal decoding: {crm:.2f} (goal: 1.2 or less)")
        results[label]["crm / marginal"] = crm
    settings = {"threads": torch.get_num_threads(), "repeats": args.repeats, "allocator": allocator}
    print(json.dumps({**settings, **results}))


if __name__ == "__main__":
    main()
