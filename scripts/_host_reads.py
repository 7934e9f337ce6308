"""Count where a call reads tensor values on the host, on any device.

On a GPU each such read waits for the work queued before it (a host sync);
``torch.cuda.set_sync_debug_mode`` reports them there. :class:`HostReads` finds the same
reads on the CPU, so that a test and the GPU check's dry run can count them without a
GPU: the operators that hand a value to Python (``item``, ``bool``, ``int`` and
``float`` of a tensor) or whose output size depends on the values (``nonzero``, boolean
indexing, ``masked_select``, ``unique``), and ``Tensor.tolist``. Each read is attributed
to the innermost frame of the hl_lightning package that led to it, as
``path/in/package.py:function``; reads with no such frame (the optimizer, Lightning) are
counted as ``elsewhere``. On the CPU it also counts reads of tensors that a GPU run
keeps on the host (an optimizer's step counts), so only the package's sites say what a
GPU run would wait for.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import hl_lightning

PACKAGE = Path(hl_lightning.__file__).resolve().parent
ELSEWHERE = "elsewhere"
_READS = {
    "aten._local_scalar_dense.default",
    "aten.nonzero.default",
    "aten.masked_select.default",
    "aten.equal.default",
    "aten.is_nonzero.default",
    "aten._unique2.default",
    "aten.unique_dim.default",
    "aten.unique_consecutive.default",
}
_INDEXING = ("aten.index.Tensor", "aten.index_put.default", "aten.index_put_.default")


def _reads_values(name: str, args: tuple[Any, ...]) -> bool:
    """Whether the operator ``name`` called with ``args`` hands values to the host."""
    if name in _READS:
        return True
    if name in _INDEXING and len(args) > 1 and isinstance(args[1], (list, tuple)):
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1])
    return False


def _site(frame: FrameType | None) -> str:
    """Return the innermost package frame from ``frame`` outwards as ``file:function``."""
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(PACKAGE):
            return f"{path.relative_to(PACKAGE.parent).as_posix()}:{frame.f_code.co_name}"
        frame = frame.f_back
    return ELSEWHERE


class HostReads(TorchDispatchMode):
    """Count the host reads of tensor values made inside the ``with`` block, per site.

    Example:
        >>> with HostReads() as reads:
        ...     _ = torch.ones(3).sum().item(), torch.arange(3).tolist()
        >>> dict(reads.sites)
        {'elsewhere': 2}
    """

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter[str] = Counter()
        self._tolist = torch.Tensor.tolist

    def in_package(self) -> dict[str, int]:
        """The reads with a package frame, per ``file:function``."""
        return {site: n for site, n in self.sites.items() if site != ELSEWHERE}

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        if _reads_values(str(func), args):
            self.sites[_site(sys._getframe(1))] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> HostReads:
        original, sites = self._tolist, self.sites

        def tolist(tensor: torch.Tensor) -> Any:
            sites[_site(sys._getframe(1))] += 1
            return original(tensor)

        torch.Tensor.tolist = tolist  # type: ignore[method-assign,assignment]
        super().__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        super().__exit__(kind, error, trace)
        torch.Tensor.tolist = self._tolist  # type: ignore[method-assign]
