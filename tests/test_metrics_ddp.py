"""Tests for the hl_lightning/metrics/ classes under DDP: two CPU processes, gloo, half the
data each."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hl_lightning import Hierarchy
from hl_lightning.metrics import (
    HierarchicalCalibrationError,
    HierarchicalConsistency,
    HierarchicalJaccardIndex,
    HierarchicalOperatingCurve,
    HierarchicalPixelAccuracy,
    HierarchicalPrecisionRecall,
    HierarchicalSegmentationMetrics,
    MistakeSeverity,
)

WORLD_SIZE = 2
TREE = {
    "background": None,
    "foreground": {
        "hair": None,
        "face": {"mouth": ["lip", "teeth"], "skin": ["cheek", "nose"], "eyes": ["left", "right"]},
    },
}


def make_metrics(hierarchy: Hierarchy) -> dict[str, torch.nn.Module]:
    """Return one of every metric, both confusion layouts (per level, leaf), node predictions."""
    return {
        "iou": HierarchicalJaccardIndex(hierarchy),
        "iou_none": HierarchicalJaccardIndex(hierarchy, average="none"),
        "iou_leaf": HierarchicalJaccardIndex(hierarchy, decode="leaf"),
        "accuracy_top_down": HierarchicalPixelAccuracy(hierarchy, decode="top_down"),
        "severity": MistakeSeverity(hierarchy),
        "calibration": HierarchicalCalibrationError(hierarchy, n_bins=5),
        "consistency": HierarchicalConsistency(hierarchy),
        "all": HierarchicalSegmentationMetrics(hierarchy),
        "all_leaf_train": HierarchicalSegmentationMetrics(
            hierarchy, decode="leaf", reliability=False
        ),
        "severity_crm": MistakeSeverity(hierarchy, decode="crm"),
        "all_crm_nodes": HierarchicalSegmentationMetrics(hierarchy, decode="crm", threshold=0.6),
        "precision_recall": HierarchicalPrecisionRecall(hierarchy, 0.7),
        "curve": HierarchicalOperatingCurve(hierarchy, 10),
    }


def make_data(hierarchy: Hierarchy) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Return 4 batches (logits (2, K, 6, 6), target (2, 6, 6)) with some ignored pixels and
    some coarse labels (internal node ids)."""
    gen = torch.Generator().manual_seed(0)
    k = hierarchy.num_leaves
    batches = []
    for _ in range(4):
        target = torch.randint(0, k, (2, 6, 6), generator=gen)
        logits = torch.randn(2, k, 6, 6, generator=gen)
        logits += 2 * torch.nn.functional.one_hot(target, k).permute(0, 3, 1, 2)
        coarse = torch.randint(k, hierarchy.num_nodes, target.shape, generator=gen)
        target = torch.where(torch.rand(target.shape, generator=gen) < 0.2, coarse, target)
        target[torch.rand(target.shape, generator=gen) < 0.1] = 255
        batches.append((logits, target))
    return batches


def compute_all(rank: int, world_size: int) -> dict[str, object]:
    """Update every metric with this rank's share of the batches; return the computed values."""
    hierarchy = Hierarchy.from_dict(TREE)
    metrics = make_metrics(hierarchy)
    for logits, target in make_data(hierarchy)[rank::world_size]:
        for metric in metrics.values():
            metric.update(logits, target)
    values = {name: metric.compute() for name, metric in metrics.items()}
    return {k: tuple(v) if isinstance(v, tuple) else v for k, v in values.items()}  # plain data


def worker(rank: int, port: int, out: Path) -> None:
    """One DDP process: join the gloo group, compute (torchmetrics syncs), save the values."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.save(compute_all(rank, WORLD_SIZE), out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_process_results_equal_single_process_on_all_data(tmp_path: Path) -> None:
    mp.spawn(worker, args=(free_port(), tmp_path), nprocs=WORLD_SIZE, join=True)
    want = compute_all(0, 1)
    half = compute_all(0, WORLD_SIZE)  # what rank 0 would report without the sync
    assert not torch.equal(half["iou"], want["iou"])
    for rank in range(WORLD_SIZE):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got.keys() == want.keys()
        for name, value in want.items():
            torch.testing.assert_close(got[name], value, equal_nan=True, msg=name)
