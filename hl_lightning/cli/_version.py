"""The ``--version`` text of the command-line tools."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from hl_lightning import __version__

#: The distributions whose versions ``--version`` reports beside hl_lightning's.
LIBRARIES = ("torch", "lightning", "torchmetrics", "hydra-core")


def version_text(prog: str) -> str:
    """Return ``<prog> <hl_lightning's version> (<library> <version>, ...)`` for ``--version``.

    Example:
        >>> from hl_lightning import __version__
        >>> version_text("hl-tree").startswith(f"hl-tree {__version__} (torch ")
        True
    """
    libraries = ", ".join(f"{name} {_installed(name)}" for name in LIBRARIES)
    return f"{prog} {__version__} ({libraries})"


def _installed(distribution: str) -> str:
    """Return the installed version of ``distribution``, or ``not installed``."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"
