"""The logits in a backbone's output: a tensor, a mapping, a Hugging Face output or a list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from torch import Tensor

__all__ = ["BackboneOutput", "BackboneOutputError", "split_outputs"]

_HOW = (
    "override HierarchicalSegmenter.compute_logits to return the logits tensor (B, K, H, W) "
    "(or a BackboneOutput(logits, aux=(...)) for auxiliary heads)"
)


class BackboneOutputError(TypeError):
    """A backbone output in which no logits are found."""


class BackboneOutput(NamedTuple):
    """The main logits (B, K, h, w) of a backbone and its auxiliary logits, if any."""

    logits: Tensor
    aux: tuple[Tensor, ...] = ()


def _tensors(value: Any, where: str) -> tuple[Tensor, ...]:
    """Return ``value`` (a tensor, or a list/tuple of tensors) as a tuple of tensors."""
    if isinstance(value, Tensor):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, Tensor) for v in value):
        return tuple(value)
    raise BackboneOutputError(
        f"the backbone's {where} is a {type(value).__name__}, not a tensor: {_HOW}"
    )


def split_outputs(output: Any) -> BackboneOutput:
    """Return the main and auxiliary logits of a backbone's ``output``.

    Accepted: a tensor; a mapping with ``"out"`` (torchvision, with ``"aux"`` for its
    auxiliary head) or ``"logits"`` (Hugging Face's ``ModelOutput``, ``aux`` if present);
    an object with a ``.logits`` tensor; a list or tuple of tensors (deep supervision: the
    first is the main output, the others auxiliary). Anything else raises a TypeError
    that names what was found and how to adapt :meth:`compute_logits`.

    Example:
        >>> import torch
        >>> out = split_outputs({"out": torch.zeros(1, 3, 4, 4), "aux": torch.ones(1, 3, 4, 4)})
        >>> out.logits.shape, len(out.aux)
        (torch.Size([1, 3, 4, 4]), 1)
        >>> split_outputs([torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 2, 2)]).aux[0].shape
        torch.Size([1, 3, 2, 2])
    """
    if isinstance(output, BackboneOutput):
        return output
    if isinstance(output, Tensor):
        return BackboneOutput(output)
    if isinstance(output, Mapping):
        key = next((k for k in ("out", "logits") if output.get(k) is not None), None)
        if key is None:
            raise BackboneOutputError(
                f"the backbone returned a {type(output).__name__} with keys "
                f"{sorted(map(str, output))}, none of them 'out' or 'logits': {_HOW}"
            )
        main = _tensors(output[key], f"output[{key!r}]")
        aux = output.get("aux")
        extra = () if aux is None else _tensors(aux, "output['aux']")
        return BackboneOutput(main[0], main[1:] + extra)
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return BackboneOutput(logits)
    if isinstance(output, list | tuple) and output:
        tensors = _tensors(output, f"output ({type(output).__name__} of {len(output)})")
        return BackboneOutput(tensors[0], tensors[1:])
    raise BackboneOutputError(
        f"the backbone returned a {type(output).__name__}, not logits: {_HOW}"
    )
