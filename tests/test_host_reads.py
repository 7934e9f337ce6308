"""Where a training step reads tensor values on the host: each read is a sync on a GPU
(the work queued so far must finish), so the step makes few, and a new one is a choice
made here, not an accident. Counted on the CPU by ``scripts/_host_reads.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from hl_lightning import Hierarchy
from hl_lightning.lightning import HierarchicalSegmenter
from hl_lightning.models import UNet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _host_reads import ELSEWHERE, HostReads

CHECK = "hl_lightning/lightning/module.py:_shared_step"  # the non-finite loss check
LABELS = "hl_lightning/label_ids.py:label_extremes"  # once per target: valid ids, coarse ones
LEVELS = "hl_lightning/losses/hierarchical.py:forward"  # exact-range and tiny-probability cases
METRICS = "hl_lightning/metrics/functional/batch.py:_prepare_batch"  # finite logits
# tree-min's CPU-only reads (uniform weights, ties, the gradient's scale): skipped on a GPU
TREE_MIN_CPU = {
    "hl_lightning/losses/_tree_min_pass.py:__init__": 1,
    "hl_lightning/losses/_tree_min_pass.py:load": 2,
    "hl_lightning/losses/_tree_min_pass.py:backward": 1,
}
EVERY_STEP = {CHECK: 1, LABELS: 1, LEVELS: 1, METRICS: 1}
EXPECTED = {
    "hierarchical": EVERY_STEP,  # the logged levels are the loss's own
    "flat": EVERY_STEP,
    "hxe": {**EVERY_STEP, LEVELS: 2},  # its level NLLs, and the logged levels
    "soft_labels": {**EVERY_STEP, "hl_lightning/losses/soft_labels.py:forward": 1},
    "tree_min": {**EVERY_STEP, **TREE_MIN_CPU},
}
# with coarse labels in the batch: the losses that gather the coarse pixels (boolean
# indexing), per level for soft labels; tree-min's pixel weights are not uniform then
COARSE = {
    "hierarchical": {},
    "flat": {"hl_lightning/losses/flat.py:_with_coarse_labels": 2},
    "hxe": {},
    "soft_labels": {"hl_lightning/losses/soft_labels.py:_with_coarse_labels": 6},
    "tree_min": {"hl_lightning/losses/_tree_min_pass.py:__init__": 0},
}


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("coarse", [False, True], ids=["leaf labels", "coarse labels"])
@pytest.mark.parametrize("loss", list(EXPECTED))
def test_a_training_step_reads_values_only_where_listed(loss: str, coarse: bool) -> None:
    torch.manual_seed(0)
    h = Hierarchy.from_dict(
        {"sky": None, "vehicle": ["car", "truck"], "nature": {"tree": None, "grass": ["a", "b"]}}
    )
    channels = h.num_nodes if loss == "tree_min" else h.num_leaves
    model = HierarchicalSegmenter(UNet(channels, width=4, depth=2), h, loss=loss)
    optimizer = torch.optim.AdamW(model.parameters())
    images = torch.randn(2, 3, 16, 16)
    target = torch.randint(0, h.num_leaves, (2, 16, 16))
    target[0, :2] = 255  # ignored pixels
    if coarse:
        target[1, :2] = h.num_leaves  # the first internal node
    for _ in range(2):  # the second step, as every later one
        with HostReads() as reads:
            step_loss = model.training_step((images, target.clone()), 0)  # a new batch
            assert step_loss is not None
            step_loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    expected = {**EXPECTED[loss], **(COARSE[loss] if coarse else {})}
    assert reads.in_package() == {site: n for site, n in expected.items() if n}
    assert reads.sites[ELSEWHERE] > 0  # the optimizer's reads of its step counts: it counts


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("loss", list(EXPECTED))
def test_a_validation_step_in_inference_mode_reads_the_labels_once(loss: str) -> None:
    h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
    channels = h.num_nodes if loss == "tree_min" else h.num_leaves
    model = HierarchicalSegmenter(UNet(channels, width=4, depth=2), h, loss=loss).eval()
    for _ in range(2):
        with torch.inference_mode():  # a batch moved to the device in the validation loop
            batch = torch.randn(2, 3, 16, 16), torch.randint(0, h.num_leaves, (2, 16, 16))
            with HostReads() as reads:
                model.validation_step(batch, 0)
    assert reads.sites[LABELS] == 1
