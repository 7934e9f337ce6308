"""What every hierarchical Metric class shares: its arguments, the hierarchy's index tables
as buffers, and the first step of each update."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from hl_lightning.decode import DecodeMethod, LevelOutputs
from hl_lightning.hierarchy import Hierarchy
from hl_lightning.metrics.functional.batch import _prepare_batch, _Target
from hl_lightning.tables import LevelTables


class _HierarchicalMetric(Metric):
    """A Metric of a hierarchy: the hierarchy's index tables as buffers (they follow the
    metric's device) and :meth:`_batch`, the checks and the one pass of each update.

    The public subclasses check their arguments with
    :func:`~hl_lightning.metrics.functional.arguments._validate_args` before calling this
    constructor, and own their summed states.
    """

    is_differentiable = False
    full_state_update = False

    level_matrix: Tensor
    parents: Tensor
    node_matrix: Tensor

    def __init__(
        self, hierarchy: Hierarchy, ignore_index: int | None, validate_args: bool, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.hierarchy = hierarchy
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        tables = LevelTables.of(hierarchy, torch.device("cpu"))
        self.sizes = tables.sizes
        self.register_buffer("level_matrix", tables.level_matrix.clone(), persistent=False)
        self.register_buffer(
            "parents",
            torch.cat([tables.level_matrix.new_empty(0), *tables.parents]),
            persistent=False,
        )
        self.register_buffer("node_matrix", tables.node_matrix.clone(), persistent=False)

    def _tables(self) -> LevelTables:
        """Return the index tables on the metric's device, as views of the buffers."""
        parents = tuple(self.parents.split(self.sizes[1:]))
        return LevelTables(self.level_matrix, parents, self.sizes, self.node_matrix)

    def _batch(
        self,
        logits: Tensor,
        target: Tensor,
        method: DecodeMethod | None = None,
        leaf: bool = False,
        marginal: bool = False,
    ) -> tuple[LevelOutputs, _Target] | None:
        """Return a batch's level outputs (as asked) and target, None if it is empty; see
        :func:`~hl_lightning.metrics.functional.batch._prepare_batch` (errors name
        ``<class>.update``)."""
        return _prepare_batch(
            logits,
            target,
            self.hierarchy,
            self.ignore_index,
            self._tables(),
            f"{type(self).__name__}.update",
            self.validate_args,
            method,
            leaf,
            marginal,
        )
