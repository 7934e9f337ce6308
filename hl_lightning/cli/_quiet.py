"""Quiet hl-train's console: drop known third-party notices that say nothing about the run."""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_third_party"]


class _DropTips(logging.Filter):
    """Drop Lightning's advertising tips (``💡 Tip: ... try installing ...``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_third_party() -> None:
    """Filter the known third-party notices of an hl-train run, each at its source."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings(  # Lightning 2.6's own use of a torch API it deprecates
        "ignore", message=r".*isinstance\(treespec, LeafSpec\)", module=r"lightning\..*"
    )
