"""Loggers: Lightning's CSVLogger continuing a resumed run's ``metrics.csv``; its MLFlowLogger
writing a local file store."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlparse

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

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
    end of a training step and that step's row can miss that one row.

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
    """Lightning's CSV writer, continuing an existing ``metrics.csv`` from the first new step."""

    def _check_log_dir_exists(self) -> None:
        # Lightning's writer deletes an existing metrics.csv here: keep it until the first row
        self._continuing = self._fs.isfile(self.metrics_file_path)

    def log_metrics(self, metrics_dict: dict[str, Any], step: int | None = None) -> None:
        """Record a row; the first one drops the existing rows at its step and later."""
        if self._continuing:
            self._continuing = False
            self._keep_rows_before(0 if step is None else step)
        super().log_metrics(metrics_dict, step)

    def _keep_rows_before(self, step: int) -> None:
        """Rewrite ``metrics.csv`` with its rows before ``step``; continue its columns."""
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            columns = list(reader.fieldnames or [])
            rows = [row for row in reader if float(row["step"]) < step]
        if not rows:
            self._fs.rm_file(self.metrics_file_path)
            return
        self.metrics_keys = columns  # Lightning's writer appends rows in this column order
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


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
