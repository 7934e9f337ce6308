"""Runs grouped into configurations for hl-compare: the runs that differ only in seed.

Runs whose overrides (``.hydra/overrides.yaml``) are the same but for ``seed`` are the seeds
of one configuration; a run without ``.hydra/overrides.yaml`` is a configuration of its own.
Configurations are labelled by the overrides in which they differ (``loss=flat``), else by
their first run's folder name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hl_lightning.cli.compare.runs import CompareError, Run, Tree, natural_key

__all__ = ["Configuration", "group_runs", "stopped_early"]


@dataclass
class Configuration:
    """The runs that differ only in seed: their label, their shared overrides, the runs."""

    label: str
    runs: list[Run]

    @property
    def overrides(self) -> dict[str, str]:
        """The overrides of the configuration's runs, seed aside (none without .hydra)."""
        return self.runs[0].overrides or {}

    @property
    def seeds(self) -> list[str]:
        """The seeds of the runs, in natural order (``-`` for a run with no known seed)."""
        return sorted((run.seed or "-" for run in self.runs), key=natural_key)

    @property
    def tree(self) -> Tree:
        """The class tree of the configuration's runs."""
        return self.runs[0].tree


def _check_seeds(runs: Sequence[Run]) -> None:
    """Raise :class:`CompareError` unless the runs differ only in seed, each seed once."""
    if len(runs) < 2:
        return
    shared = ", ".join((runs[0].overrides or {}).values()) or "no overrides"
    seen: dict[str | None, Run] = {}
    for run in runs:
        if run.seed in seen:
            seed = "no seed" if run.seed is None else f"seed {run.seed}"
            raise CompareError(
                f"{seen[run.seed].path} and {run.path} have the same overrides ({shared}) and "
                f"{seed}: a configuration takes one run per seed; leave one of them out"
            )
        seen[run.seed] = run
    configs = [run for run in runs if run.config is not None]
    for run in configs[1:]:
        first, other = configs[0].config or {}, run.config or {}
        keys = [k for k in {**first, **other} if k != "seed" and first.get(k) != other.get(k)]
        if keys:
            raise CompareError(
                f"{configs[0].path} and {run.path} have the same overrides ({shared}) but "
                f"their .hydra/config.yaml differ in {', '.join(sorted(keys))}, not only in "
                "seed: the runs of one configuration may differ only in seed; leave one out"
            )


def group_runs(runs: Sequence[Run]) -> list[Configuration]:
    """Return the configurations of ``runs``: runs with the same overrides but seed, in order.

    Labels are the overrides in which the configurations differ, else the first run's
    folder name (with it appended where two labels would be the same). Raises
    :class:`CompareError` for runs with the same overrides that are not distinct seeds.

    >>> from pathlib import Path
    >>> runs = [Run(Path(f"{job}_{loss}"), [], (), {"loss": f"loss={loss}"}, seed)
    ...         for job, (loss, seed) in enumerate([("flat", "0"), ("hxe", "0"), ("flat", "1")])]
    >>> [(c.label, c.seeds) for c in group_runs(runs)]
    [('loss=flat', ['0', '1']), ('loss=hxe', ['0'])]
    """
    groups: dict[object, list[Run]] = {}
    for run in runs:
        key = run.path if run.overrides is None else tuple(sorted(run.overrides.items()))
        groups.setdefault(key, []).append(run)
    for members in groups.values():
        _check_seeds(members)
    overrides = [members[0].overrides or {} for members in groups.values()]
    keys = list(dict.fromkeys(key for entry in overrides for key in entry))
    varying = [key for key in keys if len({entry.get(key) for entry in overrides}) > 1]
    labels = [
        ", ".join(entry[key] for key in varying if key in entry) or members[0].path.name
        for members, entry in zip(groups.values(), overrides, strict=True)
    ]
    return [
        Configuration(
            f"{label} ({members[0].path.name})" if labels.count(label) > 1 else label, members
        )
        for members, label in zip(groups.values(), labels, strict=True)
    ]


def _last_epoch(run: Run) -> int:
    """Return the last epoch with a logged validation loss (-1 without one)."""
    return max((e for lv in run.levels for e in run.series(f"val/loss/{lv}")[0]), default=-1)


def _tested(run: Run) -> bool:
    """Return whether the run logged a test loss."""
    return any(run.final(f"test/loss/{level}") is not None for level in run.levels)


def stopped_early(configuration: Configuration) -> list[str]:
    """Return a note for each run of ``configuration`` that validated fewer epochs than another
    of its seeds, or has no test values where another has: a run stopped between two rows
    (killed, or still running), whose values are its last ones, not its seeds' final ones.

    >>> from pathlib import Path
    >>> def run(name: str, epochs: int) -> Run:
    ...     rows = [{"epoch": str(e), "val/loss/class": "0.5"} for e in range(epochs)]
    ...     return Run(Path(name), rows, seed=name)
    >>> (note,) = stopped_early(Configuration("loss=flat", [run("s0", 3), run("s1", 2)]))
    >>> note.split(": ")[0]
    's1 validated up to epoch 1, another seed of loss=flat up to epoch 2'
    """
    last = {run.path: _last_epoch(run) for run in configuration.runs}
    most = max(last.values())
    tested = any(_tested(run) for run in configuration.runs)
    notes = []
    for run in configuration.runs:
        missing = []
        if last[run.path] < most:
            missing.append(
                f"validated up to epoch {last[run.path]}, another seed of "
                f"{configuration.label} up to epoch {most}"
            )
        if tested and not _tested(run):
            missing.append(f"has no test values where another seed of {configuration.label} has")
        if missing:
            notes.append(
                f"{run.path} {'; it '.join(missing)}: stopped early (killed, or still running)?"
            )
    return notes
