"""hl-train runs found and read for hl-compare: metrics, overrides, seed, config and tree.

A run is a folder with ``csv/metrics.csv`` (hl-train's CSV logger); a folder without one is
searched for runs below it (a sweep and its job folders). Its ``.hydra/overrides.yaml`` and
``.hydra/config.yaml`` give its overrides, seed and class tree where they exist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hl_lightning.cli.compare.metrics_csv import MetricsFileError, read_metrics_csv

__all__ = [
    "CompareError",
    "Run",
    "Tree",
    "find_runs",
    "load_runs",
    "natural_key",
    "override_key",
    "override_value",
]


class CompareError(ValueError):
    """Runs that cannot be compared: no metrics, broken files, an unknown metric, runs that
    do not pair."""


def natural_key(text: str) -> list[int | str]:
    """Return a sort key where digit runs compare as numbers (``2_flat`` before ``10_flat``).

    >>> sorted(["10_flat", "2_flat"], key=natural_key)
    ['2_flat', '10_flat']
    """
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def override_key(override: str) -> str:
    """Return the key of an override.

    >>> override_key("loss=flat"), override_key("+extra=1")
    ('loss', 'extra')
    """
    return override.lstrip("+~").split("=", 1)[0]


def override_value(override: str | None) -> str | None:
    """Return the value of an override, None for None.

    >>> override_value("loss=flat"), override_value(None)
    ('flat', None)
    """
    return None if override is None else override.partition("=")[2]


@dataclass(frozen=True)
class Tree:
    """A run's class tree as its files tell it: ``source`` (the ``hierarchy.source`` of its
    ``.hydra/config.yaml``, None without one) and its logged ``levels``, coarse to fine.

    Runs are on the same tree when their trees are equal.

    >>> Tree("synthetic", ("kind", "family", "class")).label
    'synthetic: kind > family > class'
    """

    source: str | None
    levels: tuple[str, ...]

    @property
    def label(self) -> str:
        """The source and the levels, coarse to fine, as a table cell or a heading."""
        levels = " > ".join(self.levels)
        return levels if self.source is None else f"{self.source}: {levels}"


@dataclass
class Run:
    """One training run: its folder, logged rows, overrides (seed aside), seed and config.

    ``overrides`` maps each key to its override (``{"loss": "loss=flat"}``), None without
    ``.hydra/overrides.yaml``; ``config`` is ``.hydra/config.yaml`` flattened to dotted
    keys, None without one; ``tree_source`` its ``hierarchy.source``, resolved.
    """

    path: Path
    rows: list[dict[str, str]]
    level_order: Sequence[str] = ()
    overrides: dict[str, str] | None = field(default_factory=dict)
    seed: str | None = None
    config: dict[str, Any] | None = None
    tree_source: str | None = None

    @cached_property
    def levels(self) -> tuple[str, ...]:
        """The level names that have a logged loss, coarse to fine when the config says."""
        names = {
            key.split("/", 2)[2]
            for key in (self.rows[0] if self.rows else {})
            if re.fullmatch(r"(train|val|test)/loss/.+", key)
        }
        known = [name for name in self.level_order if name in names]
        return (*known, *sorted(names - set(known), key=natural_key))

    @property
    def tree(self) -> Tree:
        """The run's class tree: its source and levels."""
        return Tree(self.tree_source, self.levels)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Return the epochs and values of ``key``, where it was logged."""
        epochs, values = [], []
        for row in self.rows:
            if row.get(key):
                epochs.append(int(row["epoch"]))
                values.append(float(row[key]))
        return epochs, values

    def final(self, key: str) -> float | None:
        """Return the last logged value of ``key``, None if never logged."""
        values = self.series(key)[1]
        return values[-1] if values else None


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Return the run folders: each path that has ``csv/metrics.csv``, else every run below it.

    Runs below a folder come in natural order (a sweep's job numbers: 0, 1, ..., 10).
    Raises :class:`CompareError` for a path with no run in or below it.
    """
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / "csv" / "metrics.csv").is_file():
            runs.append(path)
            continue
        found = sorted(
            (metrics.parent.parent for metrics in path.rglob("csv/metrics.csv")),
            key=lambda run: natural_key(run.relative_to(path).as_posix()),
        )
        if not found:
            raise CompareError(
                f"{path}: no csv/metrics.csv in it or below: not an hl-train run or sweep folder"
            )
        runs.extend(found)
    return runs


class _BrokenFile(ValueError):
    """A run's ``.hydra`` file that cannot be used, its message naming the file and line."""


def _read_yaml(path: Path, kind: type) -> Any:
    """Return the YAML document at ``path`` (``kind()`` when empty); raise :class:`_BrokenFile`
    naming the file and line for text that is not YAML, or not a ``kind`` (dict, list)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
        document = yaml.safe_load(text)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise _BrokenFile(f"{path}:{line}: not UTF-8 text (byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)  # a MarkedYAMLError's; a ReaderError has
        position = getattr(error, "position", 0)  # the position of a character YAML refuses
        line = mark.line + 1 if mark is not None else text.count("\n", 0, position) + 1
        problem = getattr(error, "problem", None) or getattr(error, "reason", "")
        raise _BrokenFile(
            f"{path}:{line}: not valid YAML ({problem}): cut short or edited"
        ) from None
    if document is None:
        return kind()
    if not isinstance(document, kind):
        raise _BrokenFile(
            f"{path}:1: a {type(document).__name__}, not the {kind.__name__} expected"
        )
    return document


def _overrides(run: Path) -> dict[str, str] | None:
    """Return the run's Hydra overrides as ``{key: "key=value"}``, None without the file."""
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    return {override_key(str(entry)): str(entry) for entry in _read_yaml(path, list)}


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return ``config`` as ``{"dotted.key": leaf}`` (lists are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _tree_source(config: Mapping[str, Any]) -> str | None:
    """Return the config's ``hierarchy.source``, its interpolations resolved where they can be
    (``${data.root}/${data.config}`` names another tree per data set); None without one."""
    hierarchy = config.get("hierarchy")
    source = hierarchy.get("source") if isinstance(hierarchy, Mapping) else None
    if source is None or "${" not in str(source):
        return None if source is None else str(source)
    try:
        return str(OmegaConf.select(OmegaConf.create(dict(config)), "hierarchy.source"))
    except OmegaConfBaseException:  # an interpolation only Hydra resolves: keep the text
        return str(source)


def _load_run(folder: Path) -> Run:
    """Return the run in ``folder``; raise :class:`MetricsFileError` or :class:`_BrokenFile`
    for a file it cannot trust."""
    rows = read_metrics_csv(folder / "csv" / "metrics.csv")
    overrides = _overrides(folder)
    path = folder / ".hydra" / "config.yaml"
    config = _read_yaml(path, dict) if path.is_file() else None
    seed = override_value((overrides or {}).pop("seed", None))
    if seed is None and config is not None and config.get("seed") is not None:
        seed = str(config["seed"])
    hierarchy = (config or {}).get("hierarchy")
    names = hierarchy.get("level_names") if isinstance(hierarchy, Mapping) else None
    levels = [str(name) for name in names] if isinstance(names, list) else []
    source = None if config is None else _tree_source(config)
    flat = None if config is None else _flatten(config)
    return Run(folder, rows, levels, overrides, seed, flat, source)


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Return the runs found under ``paths`` (see :func:`find_runs`) with their metrics.

    Raises one :class:`CompareError` naming every run whose metrics file is cut short or
    broken, or whose ``.hydra`` files are not readable, with the file and line: no value of
    such a run is used.

    Example (a sweep's folder)::

        load_runs(["multirun/train/2026-01-01_12-00-00"])
        # [Run(path=.../0_loss=hierarchical, ..., overrides={'loss': 'loss=hierarchical'},
        #  seed='0', ...), Run(...)]
    """
    runs, broken = [], []
    for folder in find_runs(paths):
        try:
            runs.append(_load_run(folder))
        except (MetricsFileError, _BrokenFile) as error:
            broken.append(str(error))
    if broken:
        runs_have = "a run has" if len(broken) == 1 else f"{len(broken)} runs have"
        them, their = ("it", "its") if len(broken) == 1 else ("them", "their")
        raise CompareError(
            f"{runs_have} a broken file; none of {their} values is used:\n  "
            + "\n  ".join(broken)
            + f"\nre-run or resume {them} (or wait for a run that is still writing), or leave "
            f"{them} out by naming the other run folders"
        )
    return runs
