"""Helpers shared by the loss tests: comparing gradients with a float64 reference."""

from __future__ import annotations

import torch


def assert_gradient_close(
    grad: torch.Tensor,
    reference: torch.Tensor,
    target: torch.Tensor,
    ignore_index: int | None,
    weight: float = 1.0,
    rtol: float = 1e-5,
) -> None:
    """Assert ``grad`` matches the float64 ``reference`` to ``rtol`` of the gradient's scale.

    A pixel's gradient is bounded by about ``weight / n_valid`` (``weight``: the summed
    level weights); near p = 1 its entries cancel (p - 1 in fp32, as in cross-entropy),
    so the error is measured against that scale, or the largest reference entry if larger.
    """
    n_valid = int((target != ignore_index).sum()) if ignore_index is not None else target.numel()
    scale = max(reference.abs().max().item(), weight / max(n_valid, 1))
    assert (grad.double() - reference).abs().max().item() / scale < rtol
