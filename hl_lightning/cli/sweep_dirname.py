"""Sweep job directory names that say what was swept: ``0_loss=flat``, ``1_hierarchy.source=b``.

``hl-train``'s ``hydra.sweep.subdir`` is ``<job number>_<this name>``; the job's full
overrides stay in its ``.hydra/overrides.yaml``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["sweep_argv", "sweep_dirname", "swept_keys"]

_BRACKETS = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}|\([^()]*\)")
_SWEEP_FUNCTION = re.compile(r"^(range|choice|glob|interval|tag)\(")
_UNSAFE = re.compile(r"[^\w.=,+\-]+")
_MAX_LENGTH = 120


def _key(override: str) -> str:
    """Return the key of a ``key=value`` override, without its ``+``, ``++`` or ``~``."""
    return override.split("=", 1)[0].lstrip("+~")


def _is_sweep(value: str) -> bool:
    """Return whether an override's value sweeps: ``a,b`` (outside brackets) or ``range(...)``."""
    if _SWEEP_FUNCTION.match(value):
        return True
    while _BRACKETS.search(value):
        value = _BRACKETS.sub("", value)
    return "," in value


def swept_keys(argv: Iterable[str], sweeper_params: Mapping[Any, object] | None) -> set[str]:
    """Return the keys that a command line (``argv``) or the sweeper's ``params`` sweep.

    Example:
        >>> sorted(swept_keys(["-m", "loss=a,b", "x=[1,2]", "seed=range(3)"], {"lr": "0.1,1"}))
        ['loss', 'lr', 'seed']
    """
    keys = {_key(token) for token in argv if "=" in token and _is_sweep(token.split("=", 1)[1])}
    return keys | {str(key) for key in (sweeper_params or {})}


def _short(value: str) -> str:
    """Return a value fit for a directory name: a path's last part, no unsafe characters."""
    if "/" in value:
        value = value.rstrip("/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", value).strip("_")


def sweep_argv(sweep_dir: str | Path | None) -> list[str]:
    """Return the sweep's command-line overrides: this process's, else those the sweeper saved
    in ``<sweep_dir>/multirun.yaml`` (a job started by another launcher: submitit, SLURM)."""
    argv = sys.argv[1:]
    if any("=" in token and _is_sweep(token.split("=", 1)[1]) for token in argv):
        return argv
    saved = Path(sweep_dir or "") / "multirun.yaml"
    if sweep_dir is None or not saved.is_file():
        return argv
    overrides = (yaml.safe_load(saved.read_text()) or {}).get("hydra", {}).get("overrides", {})
    return [str(o) for o in overrides.get("task", [])]


def sweep_dirname(
    task_overrides: Sequence[str],
    sweeper_params: Mapping[Any, object] | None = None,
    argv: Sequence[str] | None = None,
) -> str:
    """Return ``key=value`` of the job's swept overrides, joined by ``,`` (``run`` if none).

    The swept keys come from the sweep's command line (``argv``, default ``sys.argv``) and
    the sweeper's ``params``; where none is known, every override of the job is named.

    Example:
        >>> sweep_dirname(["experiment=quick", "hierarchy.source=/data/a.txt", "loss=flat"],
        ...               argv=["-m", "hierarchy.source=/data/a.txt,/data/b.txt"])
        'hierarchy.source=a.txt'
    """
    keys = swept_keys(sys.argv[1:] if argv is None else argv, sweeper_params)
    chosen = [o for o in task_overrides if _key(o) in keys] or list(task_overrides)
    parts = [f"{_key(o)}={_short(o.split('=', 1)[1])}" for o in chosen if "=" in o]
    return ",".join(parts)[:_MAX_LENGTH] or "run"
