"""The checks of the losses' options, in one place and with the metrics' wording.

Every loss calls :func:`validate_loss_args` when it is built: the hierarchy, ``ignore_index``
(an int that is no node id, or None: the metrics' and data modules' check,
:func:`hl_lightning.hierarchy.check_ignore_index`), level weights and class weights (finite
sequences of the right length that leave something to train) and the numeric options
``alpha``, ``beta`` and ``gamma`` (finite numbers >= 0; a bool is no number). A bad option raises an
:class:`~hl_lightning.options.OptionError` (a ValueError) that names it. The functional
losses check ``ignore_index`` and their numbers at each call.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from hl_lightning.hierarchy import Hierarchy, check_ignore_index
from hl_lightning.options import OptionError

# Per level (coarse to fine): None (all 1), one weight per group in group_names(d) order,
# or a mapping from group name to weight (unnamed groups weigh 1).
ClassWeights = Sequence[Sequence[float] | Mapping[str, float] | None]

NUMERIC_OPTIONS = ("alpha", "beta", "gamma")


def validate_loss_args(
    hierarchy: Hierarchy,
    ignore_index: int | None,
    trained_levels: Sequence[int] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Return a loss's options checked and converted; a ValueError names the first bad one.

    ``options`` by name: ``level_weights`` (None or one number per level: a (D,) tensor,
    all 1 for None), ``class_weights`` (None or per level, see :func:`class_weight_table`:
    the (D, K) table or None), ``alpha``, ``beta``, ``gamma`` (floats). Class weights that
    are all 0 at every level the loss trains (``trained_levels``, by default those with a
    level weight above 0) are refused: no pixel would be trained.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> validate_loss_args(h, 255, gamma=2)
        {'gamma': 2.0}
        >>> validate_loss_args(h, True)
        Traceback (most recent call last):
            ...
        hl_lightning.options.OptionError: ignore_index must be an int or None, got True
    """
    check_hierarchy(hierarchy)
    with _naming("ignore_index"):
        check_ignore_index(hierarchy, ignore_index, optional=True)
    checked: dict[str, Any] = {}
    for name, value in options.items():
        with _naming(name):
            if name in NUMERIC_OPTIONS:
                checked[name] = check_number(name, value)
            elif name == "level_weights":
                checked[name] = level_weight_tensor(hierarchy, value)
            elif name == "class_weights":
                checked[name] = None if value is None else class_weight_table(hierarchy, value)
            else:
                raise TypeError(f"validate_loss_args has no check for option {name!r}")
    table = checked.get("class_weights")
    if table is None:
        return checked
    if trained_levels is None:
        level_weights = checked.get("level_weights", torch.ones(hierarchy.num_levels))
        trained = [d for d, w in enumerate(level_weights.tolist()) if w > 0]
        names = ", ".join(hierarchy.level_names[d] for d in trained)
        where = f"at every level with a level weight above 0 ({names})"
    else:
        trained = list(trained_levels)
        names = ", ".join(hierarchy.level_names[d] for d in trained)
        where = f"at the levels this loss trains ({names})"
    if not any(table[d].any() for d in trained):
        raise OptionError(
            "class_weights",
            f"class_weights are all 0 {where}: no pixel would be trained; "
            "give at least one group a positive weight",
        )
    return checked


@contextmanager
def _naming(option: str) -> Iterator[None]:
    """Turn a ValueError about ``option`` into an :class:`OptionError` naming it."""
    try:
        yield
    except OptionError:
        raise
    except ValueError as error:
        raise OptionError(option, str(error)) from None


def check_hierarchy(hierarchy: Any) -> None:
    """Raise a ValueError unless ``hierarchy`` is a :class:`Hierarchy`."""
    if not isinstance(hierarchy, Hierarchy):
        raise ValueError(f"hierarchy must be a Hierarchy, got {type(hierarchy).__name__}")


def check_number(name: str, value: Any) -> float:
    """Return ``value`` as a float; a ValueError naming ``name`` unless it is a finite real
    number >= 0 (a bool is no number).

    Example:
        >>> check_number("alpha", 1)
        1.0
        >>> check_number("alpha", True)
        Traceback (most recent call last):
            ...
        ValueError: alpha must be a number, got True
    """
    if not _is_number(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {number}")
    return number


def check_weights(weights: Sequence[float], what: str) -> list[float]:
    """Return the weights as floats; a ValueError naming ``what`` unless all are finite and >= 0.

    Example:
        >>> check_weights([1, 0.5], "level_weights")
        [1.0, 0.5]
        >>> check_weights([1.0, float("nan")], "level_weights")
        Traceback (most recent call last):
            ...
        ValueError: level_weights must be finite and >= 0, got [1.0, nan]
    """
    if not all(_is_number(w) for w in weights):
        raise ValueError(f"{what} must be numbers, got {weights!r}")
    values = [float(w) for w in weights]
    if not all(math.isfinite(w) and w >= 0 for w in values):
        raise ValueError(f"{what} must be finite and >= 0, got {values}")
    return values


def _is_number(value: Any) -> bool:
    """Return whether ``value`` is a real number and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_sequence(value: Any) -> list[Any] | None:
    """Return ``value``'s items if it is a sequence (a list, tuple, 1-d tensor or array, not a
    string, mapping or number), else None."""
    if isinstance(value, str | bytes | Mapping):
        return None
    if isinstance(value, Tensor) or hasattr(value, "tolist"):
        value = value.tolist()
    return list(value) if isinstance(value, Sequence) else None


def level_weight_tensor(hierarchy: Hierarchy, level_weights: Any) -> Tensor:
    """Return one weight per level (D,), all 1 when ``level_weights`` is None.

    Raises a ValueError naming the levels when it is not a sequence of one number per
    level, and naming the weights unless they are finite, >= 0 and not all 0 (which
    would train nothing).
    """
    if level_weights is None:
        return torch.ones(hierarchy.num_levels)
    weights = _as_sequence(level_weights)
    if weights is None:
        raise ValueError(
            f"level_weights must be a sequence of {hierarchy.num_levels} numbers (levels "
            f"{', '.join(hierarchy.level_names)}), got {level_weights!r}"
        )
    values = check_weights(weights, "level_weights")
    if len(values) != hierarchy.num_levels:
        raise ValueError(
            f"{len(values)} level weights given for a hierarchy with "
            f"{hierarchy.num_levels} levels ({', '.join(hierarchy.level_names)})"
        )
    if not any(values):
        raise ValueError(
            f"level_weights are all 0, got {values}: no level would be trained; "
            "give at least one level a positive weight"
        )
    return torch.tensor(values)


def class_weight_table(hierarchy: Hierarchy, class_weights: ClassWeights) -> Tensor:
    """Return a float tensor (D, K): the class weight, at every level, of every leaf's group.

    ``class_weights`` has one entry per level, coarse to fine: ``None`` (every group
    weighs 1), a list of :meth:`Hierarchy.num_groups` weights in
    :meth:`Hierarchy.group_names` order, or a mapping ``{group name: weight}`` (the other
    groups weigh 1). Weights must be finite and non-negative.

    Example:
        >>> h = Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})
        >>> class_weight_table(h, [None, {"truck": 4.0}]).tolist()
        [[1.0, 1.0, 1.0], [1.0, 1.0, 4.0]]
    """
    levels = _as_sequence(class_weights)
    if levels is None or len(levels) != hierarchy.num_levels:
        got = (
            "a mapping"
            if isinstance(class_weights, Mapping)
            else (repr(class_weights) if levels is None else len(levels))
        )
        raise ValueError(
            f"class_weights must be a sequence with one entry per level ({hierarchy.num_levels}: "
            f"{', '.join(hierarchy.level_names)}), got {got}"
        )
    rows = []
    for d, (name, spec) in enumerate(zip(hierarchy.level_names, levels, strict=True)):
        groups = hierarchy.group_names(d)
        what = f"class_weights of level {name}"
        if spec is None:
            weights = [1.0] * len(groups)
        elif isinstance(spec, Mapping):
            unknown = sorted(set(map(str, spec)) - set(groups))
            if unknown:
                raise ValueError(f"{what}: no groups {', '.join(unknown)}")
            if not all(_is_number(w) for w in spec.values()):
                raise ValueError(f"{what} must be numbers, got {dict(spec)!r}")
            given = {str(k): v for k, v in spec.items()}
            weights = check_weights([given.get(g, 1.0) for g in groups], what)
        else:
            items = _as_sequence(spec)
            if items is None:
                raise ValueError(
                    f"{what} must be None, a list of {len(groups)} weights or a mapping from "
                    f"group name to weight, got {spec!r}"
                )
            weights = check_weights(items, what)
            if len(weights) != len(groups):
                shown = ", ".join(groups[:8]) + (", ..." if len(groups) > 8 else "")
                raise ValueError(
                    f"{what}: {len(weights)} weights for {len(groups)} groups ({shown})"
                )
        rows.append(torch.tensor(weights)[hierarchy.level_index(d)])
    return torch.stack(rows)
