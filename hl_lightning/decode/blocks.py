"""Cache-sized blocks: apply a per-pixel pass to logits (B, K, *S) a block at a time on CPU.

A chain of elementwise passes over a whole batch reads and writes main memory at every
step; over a block of about :data:`_BLOCK` logits it stays in cache, markedly faster on
CPU. Other devices get the whole batch in one block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from torch import Tensor

_BLOCK = 2**20  # logits per block when decoding on CPU (4 MB in fp32): stays in cache


def _block_size(logits: Tensor) -> tuple[int, int]:
    """Return (samples, pixels) per block of logits (B, K, *S): about ``_BLOCK`` logits on
    CPU, where the chain of elementwise passes then stays in cache; the whole batch on
    other devices or when it is smaller."""
    batch, channels, pixels = logits.shape[0], logits.shape[1], math.prod(logits.shape[2:])
    if logits.device.type != "cpu" or logits.numel() <= _BLOCK:
        return batch, pixels
    samples = max(1, _BLOCK // (channels * pixels))
    return min(samples, batch), min(max(1, _BLOCK // channels), pixels)


def _blockwise(fn: Callable[[Tensor], Mapping[str, Tensor]], logits: Tensor) -> dict[str, Tensor]:
    """Return the named tensors of ``fn`` applied to logits (B, K, *S), each shaped (..., B, *S).

    ``fn`` maps logits (b, K, n) to named tensors (..., b, n) of any dtype, the same names
    for every block; it is applied to blocks of :func:`_block_size` and each name's blocks
    are assembled into one tensor.
    """
    batch, channels, *spatial = logits.shape
    flat = logits.reshape(batch, channels, -1)
    pixels = flat.shape[2]
    samples, step = _block_size(logits)
    if samples == batch and step == pixels:
        return {
            name: out.reshape(*out.shape[:-2], batch, *spatial) for name, out in fn(flat).items()
        }
    outs: dict[str, Tensor] = {}
    for b in range(0, batch, samples):
        for i in range(0, pixels, step):
            pieces = fn(flat[b : b + samples, :, i : i + step])
            if not outs:
                outs = {
                    name: piece.new_empty((*piece.shape[:-2], batch, pixels))
                    for name, piece in pieces.items()
                }
            for name, piece in pieces.items():
                outs[name][..., b : b + samples, i : i + step] = piece
    return {name: out.view(*out.shape[:-2], batch, *spatial) for name, out in outs.items()}
