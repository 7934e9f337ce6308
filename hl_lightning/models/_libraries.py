"""Import a model library on demand, and name the setting that turns a failed download off."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["import_library", "with_download_hint"]

T = TypeVar("T")


def import_library(name: str, package: str) -> Any:
    """Return the imported module ``name``; raise naming the package and the extra."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"this backbone needs the {package} package: pip install {package} "
            '(or pip install "hl_lightning[zoo]" for every preset)'
        ) from error


def with_download_hint(build: Callable[[], T], key: str, value: Any) -> T:
    """Return ``build()``; where pretrained weights were asked for (``key=value``, not null)
    and the build fails (no network, no cache), raise naming the key that turns them off."""
    if value in (None, False):
        return build()
    try:
        return build()
    except Exception as error:
        raise RuntimeError(
            f"could not build the backbone with pretrained weights {key}={value!r}: "
            f"{type(error).__name__}: {error}. The weights are downloaded on first use; "
            f"without a network (or a filled cache) set backbone.{key}=null for random weights"
        ) from error
