"""The quiet CPU trainer of the tests that fit, validate or test a module in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L


def quiet_trainer(root: Path | str, **options: Any) -> L.Trainer:
    """Return a CPU ``Trainer`` writing under ``root`` with no logger, no checkpoints, no
    progress bar and no model summary; ``options`` add to or replace those settings."""
    settings: dict[str, Any] = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": root,
    }
    return L.Trainer(**{**settings, **options})
