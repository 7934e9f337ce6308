"""Time one training step per backbone preset, hierarchical loss against flat, in one run.

For each preset (``conf/backbone/*.yaml`` at its own sizes, weights off) two
HierarchicalSegmenters start from the same weights, one with ``loss=hierarchical`` and one
with ``loss=flat``, on the paper's Mapillary tree (K = 66 leaves, 3 levels) and one random
batch of B=4 images at 128x128. A step is the module's ``training_step`` (forward, the
logged per-level losses, the training metrics' update; a new copy of the target each
step, as from a data loader), backward and an AdamW step (``_gpu_common.train_step``). The
table reports the median step time over interleaved rounds after a warm-up
(``_timing.median_seconds_each``) and the ratio hierarchical / flat measured
in the same run. The last line is JSON. On a busy machine ``--threads 1`` is steadier.

    python scripts/bench_backbones.py [--repeats 10] [--threads N] [--presets unet smp ...]
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Callable

import torch
from _gpu_common import backbone_presets, train_step
from _timing import median_seconds_each

from hl_lightning.hierarchies import mapillary_paper_hierarchy
from hl_lightning.lightning import HierarchicalSegmenter

PRESETS = ("unet", "smp", "torchvision", "timm", "hf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds per candidate")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", ".*self.log.*")  # no Trainer here: logging is a no-op
    hierarchy = mapillary_paper_hierarchy()
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, 128, 128, generator=gen)
    target = torch.randint(0, hierarchy.num_leaves, (4, 128, 128), generator=gen)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of "
        f"{args.repeats}; Mapillary tree K={hierarchy.num_leaves}, B=4, 128x128"
    )
    print(f"{'preset':12s} {'flat ms':>9s} {'hier. ms':>9s} {'ratio':>6s}")
    results = {}
    presets = backbone_presets({})
    for name in args.presets:
        steps: dict[str, Callable[[], object]] = {}
        for loss in ("flat", "hierarchical"):
            torch.manual_seed(0)
            model = HierarchicalSegmenter(dict(presets[name]), hierarchy, loss=loss)
            steps[loss] = train_step(model, (images, target), "32", torch.device("cpu"))
        times = median_seconds_each(steps, args.repeats)
        flat, hier = 1e3 * times["flat"], 1e3 * times["hierarchical"]
        results[name] = {"flat_ms": flat, "hierarchical_ms": hier, "ratio": hier / flat}
        print(f"{name:12s} {flat:9.1f} {hier:9.1f} {hier / flat:6.3f}")
    print(json.dumps({"threads": torch.get_num_threads(), "repeats": args.repeats, **results}))


if __name__ == "__main__":
    main()
