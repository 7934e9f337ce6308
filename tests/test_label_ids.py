"""A target's label id range: read once per tensor, again after any change, and the same
answer as a direct look at the ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hl_lightning.label_ids import has_coarse_labels, label_extremes


class Aminmaxes(TorchDispatchMode):
    """Count the reductions over label ids (one per read of a target)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += func is torch.ops.aten.aminmax.default
        return func(*args, **(kwargs or {}))


@pytest.fixture
def reductions() -> Iterator[Aminmaxes]:
    with Aminmaxes() as mode:
        yield mode


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.int32, torch.int64])
@pytest.mark.parametrize("ignore_index", [255, None])
def test_the_extremes_are_those_of_the_ids_that_count(dtype: torch.dtype, ignore_index) -> None:
    torch.manual_seed(0)
    target = torch.randint(1, 20, (2, 5, 7)).to(dtype)
    target[0, 0, :3] = 255
    counted = target.long()
    if ignore_index is not None:
        counted = counted[counted != ignore_index]
        expected = (0, int(counted.max()))  # ignored pixels read as 0
    else:
        expected = (int(counted.min()), 255)
    assert label_extremes(target, ignore_index) == expected
    assert has_coarse_labels(target, 20, ignore_index) is (ignore_index is None)


def test_an_empty_or_fully_ignored_target_reads_as_leaf_0() -> None:
    assert label_extremes(torch.zeros(0, 4, dtype=torch.long), 255) == (0, 0)
    assert label_extremes(torch.full((2, 3), 255), 255) == (0, 0)


def test_the_same_tensor_is_read_once(reductions: Aminmaxes) -> None:
    target = torch.tensor([[0, 2, 255]])
    for _ in range(3):
        assert label_extremes(target, 255) == (0, 2)
        assert not has_coarse_labels(target, 3, 255)
    assert reductions.count == 1


def test_a_change_or_another_tensor_is_read_again(reductions: Aminmaxes) -> None:
    target = torch.tensor([[0, 2, 255]])
    assert label_extremes(target, 255) == (0, 2)
    target.view(-1)[0] = 4  # in place, through a view: a coarse label now
    assert label_extremes(target, 255) == (0, 4) and has_coarse_labels(target, 3, 255)
    same_values = target.clone()
    assert label_extremes(same_values, 255) == (0, 4)
    assert label_extremes(same_values, None) == (2, 255)  # another ignore_index
    assert reductions.count == 4


def test_inference_tensors_are_read_every_time(reductions: Aminmaxes) -> None:
    with torch.inference_mode():
        target = torch.tensor([[1, 2]])
        assert label_extremes(target, 255) == (1, 2)
        target[0, 0] = 5  # an inference tensor keeps no version counter
        assert label_extremes(target, 255) == (2, 5)
    assert reductions.count == 2
