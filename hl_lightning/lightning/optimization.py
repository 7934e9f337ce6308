"""The optimizer and learning-rate schedule of a module, from factories or Hydra configs.

A schedule steps once per epoch (``interval="epoch"``) or once per optimizer step
(``"step"``, Lightning's ``interval``: a poly decay per iteration, as the HSSN recipes
publish). A schedule config whose length key (``total_iters``, ``T_max``,
``total_steps``) is null runs for the whole training: the epochs, or the optimizer
steps Lightning estimates for the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch
from hydra.utils import instantiate
from lightning.pytorch import Trainer
from torch import nn

from hl_lightning.options import OptionError

__all__ = [
    "LENGTH_KEYS",
    "OptimizerFactory",
    "SchedulerFactory",
    "SchedulerInterval",
    "make_optimizer",
    "make_scheduler",
    "run_length",
]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
#: When a schedule steps: every epoch, or every optimizer step.
SchedulerInterval = Literal["epoch", "step"]
#: The keys by which torch's schedules take their length, filled in where null.
LENGTH_KEYS = ("total_iters", "T_max", "total_steps")


def make_optimizer(
    factory: OptimizerFactory | Mapping[str, Any] | None, params: Iterable[nn.Parameter]
) -> torch.optim.Optimizer:
    """Return the optimizer of ``params``: from a factory, a Hydra config (``_target_``), or
    AdamW(lr=1e-3) by default.

    Example:
        >>> params = [nn.Parameter(torch.zeros(2))]
        >>> type(make_optimizer({"_target_": "torch.optim.SGD", "lr": 0.1}, params)).__name__
        'SGD'
    """
    if factory is None:
        return torch.optim.AdamW(params, lr=1e-3)
    if isinstance(factory, Mapping):
        return instantiate(factory, _partial_=True)(params)
    return factory(params)


def make_scheduler(
    factory: SchedulerFactory | Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    length: int | None,
) -> Any:
    """Return the schedule of ``optimizer``: from a factory, or a Hydra config whose null
    length key (:data:`LENGTH_KEYS`) becomes ``length`` (the epochs or steps it runs for;
    None where the run has no fixed length, an error for such a key).

    Example:
        >>> optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1)
        >>> spec = {"_target_": "torch.optim.lr_scheduler.PolynomialLR", "total_iters": None}
        >>> make_scheduler(spec, optimizer, 100).total_iters
        100
    """
    if not isinstance(factory, Mapping):
        return factory(optimizer)
    spec = dict(factory)
    for key in LENGTH_KEYS:
        if key in spec and spec[key] is None:
            if length is None:
                raise OptionError(
                    "scheduler",
                    f"the schedule's {key} is null (the whole run), but the run has no fixed "
                    f"length: set trainer.max_epochs (or max_steps), or the schedule's {key}",
                )
            spec[key] = length
    return instantiate(spec, _partial_=True)(optimizer)


def run_length(trainer: Trainer | None, interval: SchedulerInterval) -> int | None:
    """Return the epochs (``interval="epoch"``) or optimizer steps (``"step"``) the trainer
    runs for; None without a trainer or for a run of no fixed length.

    Example:
        >>> run_length(Trainer(max_epochs=3, logger=False), "epoch")
        3
    """
    if trainer is None:
        return None
    if interval == "epoch":
        epochs = trainer.max_epochs
        return epochs if epochs is not None and epochs > 0 else None
    steps = trainer.estimated_stepping_batches  # max_steps, or epochs x batches
    return int(steps) if 0 < steps < math.inf else None
