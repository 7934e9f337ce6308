"""What every console script does at launch: import from the launch directory, and the
message of a user error raised in a data-loader worker."""

from __future__ import annotations

import os
import sys

__all__ = ["importable_launch_directory", "user_message"]


def importable_launch_directory() -> None:
    """Make modules of the launch directory importable, as ``python -m`` does, so that a
    config's ``_target_: mynets.MyNet`` finds ``./mynets.py``. The directory goes last on
    ``sys.path``: a local file never shadows an installed package."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


def user_message(error: BaseException) -> str:
    """Return the message of ``error`` as raised, also when a data-loader worker raised it.

    PyTorch re-raises a worker's exception in the main process with its type but with the
    text ``Caught <type> in DataLoader worker process N. Original Traceback ...``; the
    original message is the end of that text, after the traceback's last ``<type>: ``.

    Example:
        >>> user_message(ValueError("bad file x.png"))
        'bad file x.png'
        >>> wrapped = ValueError(
        ...     "Caught ValueError in DataLoader worker process 1.\\nOriginal Traceback "
        ...     "(most recent call last):\\n  File ...\\nValueError: bad file x.png\\n"
        ... )
        >>> user_message(wrapped)
        'bad file x.png'
    """
    text = str(error)
    if not text.startswith(f"Caught {type(error).__name__} ") or "Original Traceback" not in text:
        return text
    marker = f"{type(error).__name__}: "
    return text[text.rindex(marker) + len(marker) :].strip()
