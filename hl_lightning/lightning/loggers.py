"""Loggers: Lightning's CSVLogger continuing a resumed run's ``metrics.csv`` (replaced whole
at every save); its MLFlowLogger writing a local file store."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from hl_lightning.atomic import atomic_path, atomic_write, is_local

__all__ = ["FileStoreMLFlowLogger", "ResumableCSVLogger", "file_store_metric_name"]


class ResumableCSVLogger(CSVLogger):
    """Lightning's :class:`~lightning.pytorch.loggers.CSVLogger` that keeps an existing file.

    Lightning's CSVLogger deletes ``metrics.csv`` when its directory already holds one, so
    a run resumed into its own directory (``hl-train ckpt_path=<run>/checkpoints/last.ckpt
    hydra.run.dir=<run>``) would lose every row logged before the crash. This one keeps
    them: when it logs its first row, at step ``s``, it drops the old rows at steps
    ``>= s`` (logged by the crashed run after its last checkpoint, and about to be logged
    again) and appends from there. Every step's row is then in the file once. A fresh run
    into a used directory starts at step 0 and so replaces the old rows, as CSVLogger does.

    Rows are flushed as they are logged (Lightning saves the loggers after every log), so
    a crash loses no row; only a kill in the instant between a checkpoint written at the
    end of a training step and that step's row can miss that one row. Each save replaces
    the file whole (written beside it, then renamed over it): a kill never leaves a row
    cut short. The cost is a rewrite of the file per save, which is small next to a step.

    Args: as :class:`~lightning.pytorch.loggers.CSVLogger`.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer of ``metrics.csv`` and ``hparams.yaml`` (rank 0 only)."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        # Lightning types the attribute as Fabric's writer; this property is what sets it
        return cast(ExperimentWriter, self._experiment)


class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, saving whole files and continuing an existing ``metrics.csv``.

    Lightning's writer appends rows to ``metrics.csv`` in place (a kill during the append
    leaves a row cut short) and rewrites it in place when a column appears. This one keeps
    the file's rows and replaces the file whole at every save
    (:func:`hl_lightning.atomic.atomic_write`), rendering only the new rows unless the
    columns changed; ``hparams.yaml`` is replaced whole too.
    """

    def _check_log_dir_exists(self) -> None:
        # Lightning's writer deletes an existing metrics.csv here: keep it until the first row
        self._continuing = self._fs.isfile(self.metrics_file_path)
        self._rows: list[dict[str, Any]] = []  # every row of the file, as logged
        self._text = ""  # those rows as CSV lines in the columns metrics_keys

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        """Record a row; the first one drops the existing rows at its step and later."""
        if self._continuing:
            self._continuing = False
            self._keep_rows_before(0 if step is None else step)
        super().log_metrics(metrics_dict, step)

    def _keep_rows_before(self, step: int) -> None:
        """Take the rows of ``metrics.csv`` before ``step`` and its columns (the file stays
        as it is until the next save). A row cut short (fewer fields: an append of an older
        writer, killed) is left out."""
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            columns = list(reader.fieldnames or [])
            rows = [r for r in reader if None not in r.values() and float(r["step"]) < step]
        if rows:
            self.metrics_keys = columns  # continue in the file's column order
            self._rows = rows
            self._text = self._render(rows)

    def _render(self, rows: list[dict[str, Any]]) -> str:
        """Return ``rows`` as CSV lines in the columns ``metrics_keys``."""
        text = io.StringIO()
        csv.DictWriter(text, fieldnames=self.metrics_keys).writerows(rows)
        return text.getvalue()

    def save(self) -> None:
        """Replace ``metrics.csv`` whole with every row recorded so far."""
        if not self.metrics:
            return
        if self._record_new_keys():
            self._text = self._render(self._rows)  # a new column: every row again
        self._text += self._render(self.metrics)
        self._rows.extend(self.metrics)
        self.metrics = []
        header = io.StringIO()
        csv.DictWriter(header, fieldnames=self.metrics_keys).writeheader()
        local = is_local(self.metrics_file_path)
        with (
            atomic_write(self.metrics_file_path, newline="")
            if local
            else self._fs.open(self.metrics_file_path, "w", newline="")  # remote: no rename
        ) as file:
            file.write(header.getvalue() + self._text)

    def log_hparams(self, params: dict[str, Any]) -> None:
        """Record hyper-parameters and replace ``hparams.yaml`` whole."""
        if not is_local(self.log_dir):
            super().log_hparams(params)
            return
        self.hparams.update(params)
        with atomic_path(Path(self.log_dir) / self.NAME_HPARAMS_FILE) as temporary:
            save_hparams_to_yaml(temporary, self.hparams)


def file_store_metric_name(key: str) -> str:
    """Return a metric name that an MLflow file store can hold beside the others.

    A file store keeps each metric in a file at its name's path, so ``val/loss`` (a file)
    cannot sit beside ``val/loss/kind`` (a file in a folder ``val/loss``): the parts after
    the metric's name join with dots instead.

    Example:
        >>> file_store_metric_name("val/loss/kind"), file_store_metric_name("val/loss")
        ('val/loss.kind', 'val/loss')
    """
    stage, _, rest = key.partition("/")
    return f"{stage}/{rest.replace('/', '.')}" if rest else stage


class FileStoreMLFlowLogger(MLFlowLogger):
    """Lightning's :class:`~lightning.pytorch.loggers.MLFlowLogger`, whose per-level metrics
    fit a local file store (``tracking_uri`` ``file:...`` or a path).

    There it logs ``val/loss/kind`` as ``val/loss.kind`` (:func:`file_store_metric_name`),
    else a file store fails on the first per-level metric; other stores (a server, a
    database) get the names unchanged.

    Args: as :class:`~lightning.pytorch.loggers.MLFlowLogger`.
    """

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log ``metrics`` at ``step``, renamed for a file store."""
        if urlparse(self._tracking_uri).scheme in ("", "file"):
            metrics = {file_store_metric_name(k): v for k, v in metrics.items()}
        super().log_metrics(metrics, step)
