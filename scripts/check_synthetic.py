"""Check that the synthetic dataset is learnable: flat cross-entropy, plain torch loop, CPU.

Trains :class:`hl_lightning.models.UNet` on :class:`hl_lightning.data.SyntheticShapes`
for a fixed number of epochs (or until a time budget runs out) and prints the validation
mIoU at every level of the synthetic hierarchy (leaf predictions mapped up), coarse to
fine, with the wall time. Chance level for the leaf mIoU (all background, or uniform
guesses) is below 0.05.

    python scripts/check_synthetic.py --epochs 8 --threads 2
    python scripts/check_synthetic.py --variant hard
"""

from __future__ import annotations

import argparse
import time
from typing import Literal

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex

from hl_lightning.data import IGNORE_INDEX, SyntheticShapes, synthetic_variant_hierarchy
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.models import UNet


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=float("inf"), help="training budget")
    parser.add_argument("--num-train", type=int, default=512)
    parser.add_argument("--num-val", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--schedule", choices=["onecycle", "constant"], default="onecycle", help="learning rate"
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--up", choices=["transposed", "bilinear"], default="transposed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", choices=["default", "hard"], default="default")
    return parser.parse_args()


@torch.no_grad()
def evaluate(
    net: UNet, data: SyntheticShapes, hierarchy: Hierarchy, per_class: bool = False
) -> list[float]:
    """Return the mIoU at every level, coarse to fine, of the leaf argmax mapped up.

    With ``per_class``, return instead the IoU of every leaf class.
    """
    net.eval()
    average: Literal["none", "macro"] = "none" if per_class else "macro"
    levels = [hierarchy.num_levels - 1] if per_class else range(hierarchy.num_levels)
    metrics = {
        d: MulticlassJaccardIndex(
            hierarchy.num_groups(d), average=average, ignore_index=IGNORE_INDEX
        )
        for d in levels
    }
    for start in range(0, len(data), 64):
        images, masks = data.images[start : start + 64], data.masks[start : start + 64]
        leaves = net(images).argmax(1)
        for d, metric in metrics.items():
            metric.update(
                hierarchy.labels_at_level(leaves, d),
                hierarchy.labels_at_level(masks, d, ignore_index=IGNORE_INDEX),
            )
    net.train()
    if per_class:
        return metrics[hierarchy.num_levels - 1].compute().tolist()
    return [float(m.compute()) for m in metrics.values()]


def main() -> None:
    """Train, evaluate every epoch and print the per-level mIoU and timings."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train = SyntheticShapes(args.num_train, args.image_size, seed=args.seed, variant=args.variant)
    val = SyntheticShapes(args.num_val, args.image_size, seed=args.seed + 1, variant=args.variant)
    hierarchy = synthetic_variant_hierarchy(args.variant).reorder(train.class_names)
    print(f"generated {len(train)} + {len(val)} images in {time.perf_counter() - start:.1f} s")

    net = UNet(len(train.class_names), width=args.width, depth=args.depth, up=args.up)
    optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * -(-len(train) // args.batch_size)
    schedule: torch.optim.lr_scheduler.LRScheduler
    if args.schedule == "onecycle":
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps)
    else:
        schedule = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    order = torch.Generator().manual_seed(args.seed)
    names = ", ".join(hierarchy.level_names)
    start = time.perf_counter()
    train_time = 0.0
    for epoch in range(args.epochs):
        tick = time.perf_counter()
        total = 0.0
        for batch in torch.randperm(len(train), generator=order).split(args.batch_size):
            loss = F.cross_entropy(
                net(train.images[batch]), train.masks[batch], ignore_index=IGNORE_INDEX
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        train_time += time.perf_counter() - tick
        mious = evaluate(net, val, hierarchy)
        print(
            f"epoch {epoch + 1:2d}  loss {total / len(train):.3f}  mIoU ({names}) "
            + " ".join(f"{m:.3f}" for m in mious)
            + f"  train {train_time:.0f} s, total {time.perf_counter() - start:.0f} s"
        )
        if train_time > args.max_seconds:
            break
    leaf_iou = evaluate(net, val, hierarchy, per_class=True)
    print(
        "leaf IoU: "
        + ", ".join(f"{n} {v:.2f}" for n, v in zip(train.class_names, leaf_iou, strict=True))
    )


if __name__ == "__main__":
    main()
