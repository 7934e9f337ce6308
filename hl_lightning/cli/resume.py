"""Resume a run from its directory alone, and refuse a checkpoint of another model.

``hl-train resume=<run dir>`` reuses the run's saved config (``<run>/.hydra/config.yaml``),
continues from its ``checkpoints/last.ckpt`` into the same directory, and writes its own
record under ``<run>/resumes/<time>/``: the run's original ``.hydra`` is never touched.
Overrides given with it change keys of the saved config (``trainer.max_epochs=20``); the
model's shape (backbone, hierarchy, loss) must stay that of the checkpoint. A broken saved
config or checkpoint (a kill or a full disk while it was written) is named in one line,
with the newest intact checkpoint of the run to continue from instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from hl_lightning.lightning.checkpoints import (
    CheckpointError,
    newest_intact_checkpoint,
    read_checkpoint,
)

__all__ = [
    "ResumeError",
    "check_checkpoint_fits",
    "model_differences",
    "resume_config",
    "resume_run_dir",
    "second_output_subdir",
]

#: The checkpoint hyper-parameters that fix the model's shape (its state dict's keys, sizes).
SHAPE_KEYS = ("backbone", "hierarchy", "loss", "loss_options", "level_weights")
_SUBDIRS: dict[str, str] = {}  # run dir -> its record's subfolder, decided once per process


class ResumeError(ValueError):
    """A resume that cannot continue the run: no such run, or another model's checkpoint."""


def resume_run_dir(resume: str | None, default: str) -> str:
    """Return the run directory of this invocation: ``default``, or for a resume of run
    ``resume`` its ``resumes/<default's last part>`` subfolder (the resume's own record).

    Example:
        >>> resume_run_dir(None, "outputs/train/2026-01-01_10-00-00")
        'outputs/train/2026-01-01_10-00-00'
        >>> resume_run_dir("outputs/train/a", "outputs/train/2026-01-02_09-00-00")
        'outputs/train/a/resumes/2026-01-02_09-00-00'
    """
    if not resume:
        return default
    return str(Path(resume) / "resumes" / Path(default).name)


def second_output_subdir(run_dir: str, stamp: str) -> str:
    """Return where Hydra records this invocation in ``run_dir``: ``.hydra``, or where a
    record is already there (a rerun into the directory), ``.hydra/again/<stamp>``."""
    if run_dir not in _SUBDIRS:
        taken = (Path(run_dir) / ".hydra" / "config.yaml").is_file()
        _SUBDIRS[run_dir] = f".hydra/again/{stamp}" if taken else ".hydra"
    return _SUBDIRS[run_dir]


def resume_config(run: str | Path, overrides: Sequence[str]) -> DictConfig:
    """Return the saved config of ``run`` with ``overrides`` (``key=value``) applied, set to
    continue from the run's last checkpoint into the run's own directory."""
    run = Path(run)
    saved = run / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ResumeError(
            f"resume={run}: no {saved}; resume takes an hl-train run directory "
            "(outputs/train/<time>, or a sweep's job folder)"
        )
    try:
        cfg = OmegaConf.load(saved)
    except yaml.YAMLError as error:
        problem = str(error).splitlines()[0]
        raise ResumeError(
            f"resume={run}: the saved config {saved} cannot be read ({problem}); a run "
            "stopped while it started leaves it cut short: start the run again"
        ) from None
    if not isinstance(cfg, DictConfig) or not cfg:
        raise ResumeError(
            f"resume={run}: the saved config {saved} is empty or not a mapping; a run "
            "stopped while it started leaves it so: start the run again"
        )
    for override in overrides:
        key, sep, value = override.partition("=")
        key = key.lstrip("+")
        if not sep or key.startswith(("~", "hydra.")) or key == "resume":
            continue
        current = OmegaConf.select(cfg, key, default=None)
        if isinstance(current, DictConfig):
            raise ResumeError(
                f"resume={run}: {override!r} chooses another {key!r} preset; a resume keeps "
                "the run's presets (give key=value overrides of its config, e.g. "
                "trainer.max_epochs=20)"
            )
        OmegaConf.update(cfg, key, yaml.safe_load(value), force_add=True)
    OmegaConf.update(cfg, "paths.output_dir", str(run.resolve()))
    if OmegaConf.select(cfg, "ckpt_path") is None:
        OmegaConf.update(cfg, "ckpt_path", "last")
    OmegaConf.update(cfg, "fit", True)
    return cfg


def _flat(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(dotted key, leaf value)`` of nested mappings."""
    if isinstance(value, Mapping) and value and prefix != "hierarchy":
        for key, item in value.items():
            yield from _flat(item, f"{prefix}.{key}")
    else:
        yield prefix, value


def model_differences(checkpoint: Mapping[str, Any], model: Mapping[str, Any]) -> list[str]:
    """Return ``key: checkpoint value != this run's`` for every shape-fixing hyper-parameter
    (:data:`SHAPE_KEYS`) in which a checkpoint and a model differ.

    Example:
        >>> model_differences({"backbone": {"width": 4}, "loss": "hierarchical"},
        ...                   {"backbone": {"width": 16}, "loss": "hierarchical"})
        ['backbone.width: 4 in the checkpoint, 16 in this run']
    """
    differences = []
    for key in SHAPE_KEYS:
        old = dict(_flat(checkpoint.get(key), key))
        new = dict(_flat(model.get(key), key))
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                if name == "hierarchy":
                    differences.append("hierarchy: another class tree than the checkpoint's")
                else:
                    before, after = old.get(name), new.get(name)
                    differences.append(
                        f"{name}: {before!r} in the checkpoint, {after!r} in this run"
                    )
    return differences


def _read_or_suggest(path: Path, run: str) -> dict[str, Any]:
    """Return the checkpoint at ``path`` (:func:`read_checkpoint`); where it is broken, raise
    a ResumeError naming it and the newest intact checkpoint beside it to continue from."""
    try:
        return read_checkpoint(path)
    except CheckpointError as error:
        intact = newest_intact_checkpoint(path.parent)
        if intact is None:
            advice = f"no intact checkpoint in {path.parent}: start the run again"
        else:
            advice = (
                f"the newest intact checkpoint of the run is {intact}: continue from it with "
                f"hl-train resume={run} ckpt_path={intact}"
            )
        raise ResumeError(f"{error}; {advice}") from None


def check_checkpoint_fits(path: str | Path, model_hparams: Mapping[str, Any], run: str) -> None:
    """Raise a :class:`ResumeError` listing the differences when the checkpoint at ``path``
    holds another model than ``model_hparams`` describe (before Lightning's state-dict error),
    or naming it where it is broken (:func:`read_checkpoint`), with the newest intact one."""
    saved = _read_or_suggest(Path(path), run).get("hyper_parameters", {})
    differences = model_differences(saved, model_hparams)
    if differences:
        listed = "\n  ".join(differences)
        raise ResumeError(
            f"the checkpoint {path} holds another model than this run's config builds:\n"
            f"  {listed}\nresume with the run's own config: hl-train resume={run}"
        )
