"""Checkpoints: written whole, read with one check that names the file, saved on SIGTERM.

- :class:`AtomicCheckpointIO` is the CheckpointIO plugin hl-train gives the Trainer
  (``conf/trainer/default.yaml``): every checkpoint is written through
  :mod:`hl_lightning.atomic`. Lightning 2.6's own writer (``TorchCheckpointIO``) writes a
  temporary file in ``$TMPDIR`` and moves it over the target; where the run directory is
  on another file system, that move is a copy into the final name, so a kill or a full
  disk during it leaves half a checkpoint and the previous ``last.ckpt`` gone.
- :func:`read_checkpoint` is the one check of a checkpoint file before use (hl-predict,
  ``hl-train resume=``): missing, truncated, foreign or non-finite, each named in one line.
- :class:`CheckpointOnSigterm` saves ``last.ckpt`` when SIGTERM stops a fit. Lightning
  2.6 catches SIGTERM, lets the batch under way finish, then raises ``SIGTERMException``
  (a ``SystemExit`` with no code: exit status 0), saving nothing; under DDP its handler
  can hang the run (see the class).
"""

from __future__ import annotations

import io
import logging
import signal
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hl_lightning.atomic import atomic_write, is_local, remove_leftovers

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointError",
    "CheckpointOnSigterm",
    "newest_intact_checkpoint",
    "read_checkpoint",
]

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, truncated, foreign or not finite."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's :class:`~lightning.fabric.plugins.io.TorchCheckpointIO`, writing local
    checkpoints whole (:func:`hl_lightning.atomic.atomic_write`).

    A kill at any moment leaves the previous checkpoint under its name; a full disk raises
    :class:`~hl_lightning.atomic.DiskFullError` (the path and the free space) and keeps it.
    Temporary files of writers killed earlier are removed first. Remote paths (``s3://``)
    and ``storage_options`` go to Lightning's writer. Give it to the Trainer as a plugin.

    Example:
        >>> trainer = L.Trainer(plugins=[AtomicCheckpointIO()], logger=False)
        >>> type(trainer.strategy.checkpoint_io).__name__
        'AtomicCheckpointIO'
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` whole, or leave the file there as it was."""
        if storage_options is not None or not is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(target)
        # serialised first: torch's zip writer turns a full disk into a RuntimeError
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_write(target, "wb") as file:
            file.write(buffer.getbuffer())


def _unreadable(path: Path, error: Exception) -> CheckpointError:
    """Return the error for a file ``torch.load`` cannot read: cut short, or not a torch file."""
    with path.open("rb") as file:
        zipped = file.read(4) == b"PK\x03\x04"  # torch's checkpoints are zip archives
    if not zipped:
        return CheckpointError(f"the checkpoint {path} is not a checkpoint file (not a torch file)")
    if not zipfile.is_zipfile(path):
        return CheckpointError(
            f"the checkpoint {path} is truncated or damaged (a torch file cut short, as a kill "
            "or a full disk while it is written leaves it)"
        )
    reason = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else ""
    return CheckpointError(
        f"the checkpoint {path} cannot be read by torch.load(weights_only=True) "
        f"({reason or type(error).__name__})"
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Return the HierarchicalSegmenter checkpoint at ``path`` (on the CPU) after checking it.

    Raises a :class:`CheckpointError` of one line naming the file where it is missing,
    empty, truncated or damaged, not a torch file, not a HierarchicalSegmenter checkpoint
    (no ``state_dict``, no ``hierarchy`` among its hyper-parameters), or where a weight
    holds NaN or infinity (the entries are named). Loads with ``weights_only=True``.

    Example:
        >>> read_checkpoint("no/such.ckpt")
        Traceback (most recent call last):
        ...
        hl_lightning.lightning.checkpoints.CheckpointError: no checkpoint file no/such.ckpt
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"the checkpoint {path} is empty (0 bytes)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure to read a file is the file's problem
        raise _unreadable(path, error) from None
    weights = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(weights, Mapping):
        raise CheckpointError(
            f"the checkpoint {path} is not a HierarchicalSegmenter checkpoint (no state_dict: "
            "a bare state dict, or another program's file?)"
        )
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or not {"hierarchy", "backbone"} <= hparams.keys():
        raise CheckpointError(
            f"the checkpoint {path} is not a HierarchicalSegmenter checkpoint (no hierarchy "
            "and backbone among its hyper-parameters: another LightningModule's?)"
        )
    broken = [
        name
        for name, value in weights.items()
        if isinstance(value, torch.Tensor)
        and (value.is_floating_point() or value.is_complex())
        and not bool(torch.isfinite(value).all())
    ]
    if broken:
        more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
        raise CheckpointError(
            f"the checkpoint {path} holds non-finite weights (NaN or infinity) in "
            f"{', '.join(broken[:5])}{more}"
        )
    return dict(checkpoint)


def newest_intact_checkpoint(folder: str | Path) -> Path | None:
    """Return the newest (by modification time) ``*.ckpt`` in ``folder`` that
    :func:`read_checkpoint` accepts, or None.

    Example:
        >>> newest_intact_checkpoint("no/such/folder") is None
        True
    """
    candidates = sorted(Path(folder).glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    for path in reversed(candidates):
        try:
            read_checkpoint(path)
        except CheckpointError:
            continue
        return path
    return None


class CheckpointOnSigterm(L.Callback):
    """Save ``last.ckpt`` when SIGTERM (what a cluster sends before it kills) stops a fit.

    Lightning 2.6 stops a fit on SIGTERM at the end of the batch under way with
    ``SIGTERMException`` and saves nothing. Under DDP its signal handler also broadcasts
    from inside the handler, a collective that meets whatever collective another process
    is in at that moment, and a process that stops alone leaves the others waiting: the
    run can hang instead of stopping (Lightning issue 20806). So from the start of
    training this callback only notes the signal; at the end of every training batch (but
    an epoch's last, where validation follows) and at every epoch's end, all processes
    agree whether one of them got it (one all-reduce) and, if so, all call Lightning's own
    handler together, so that they stop at the same point; then this callback saves the
    state reached into the ``last.ckpt`` of every
    :class:`~lightning.pytorch.callbacks.ModelCheckpoint` with ``save_last``. The run
    resumes from it as from any ``last.ckpt``. (Lightning's ``save_on_exception`` saves on
    any error and writes a named checkpoint as well, which can pass for a best one.)

    Example:
        >>> trainer = L.Trainer(callbacks=[CheckpointOnSigterm()], logger=False)
        >>> any(isinstance(c, CheckpointOnSigterm) for c in trainer.callbacks)
        True
    """

    def __init__(self) -> None:
        self._received = False  # this process got SIGTERM during training
        self._lightning_handler: Any = None  # Lightning's SIGTERM handler of this fit

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Take SIGTERM over from Lightning's handler (which its teardown undoes)."""
        self._received = False
        if threading.current_thread() is threading.main_thread():
            self._lightning_handler = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._received = True

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        """Pass a SIGTERM on to Lightning on every process, but at an epoch's last batch
        (its validation, which a SIGTERM would cut short, comes next)."""
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:  # within limits too
            self._pass_on(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Pass a SIGTERM on to Lightning on every process (it stops after this epoch)."""
        self._pass_on(trainer)

    def _pass_on(self, trainer: L.Trainer) -> None:
        """If any process got SIGTERM, call Lightning's handler on all of them at once."""
        if trainer.strategy.reduce_boolean_decision(self._received, all=False):
            self._received = False
            if callable(self._lightning_handler):
                self._lightning_handler(signal.SIGTERM, None)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Save the last checkpoints if ``exception`` is Lightning's stop on SIGTERM in a fit."""
        if not isinstance(exception, SIGTERMException):
            return
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
            return
        paths = sorted(
            {
                Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
                for callback in trainer.checkpoint_callbacks
                if isinstance(callback, ModelCheckpoint) and callback.save_last and callback.dirpath
            }
        )
        for path in paths:
            trainer.save_checkpoint(path)
            if trainer.is_global_zero:
                log.warning("SIGTERM: saved the run at step %d in %s", trainer.global_step, path)
