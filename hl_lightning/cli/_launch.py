"""What every console script does at launch: its argument parser, importing from the launch
directory, and the message of a user error raised in a data-loader worker."""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

__all__ = ["CommandLineParser", "importable_launch_directory", "user_message"]


class CommandLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 1, as
    every other user error of the console scripts (argparse's own: usage lines, status 2).

    Example:
        >>> parser = CommandLineParser(prog="hl-x")
        >>> _ = parser.add_argument("--size", type=int)
        >>> try:
        ...     parser.parse_args(["--size", "abc"])
        ... except SystemExit as stop:
        ...     print(stop.code)
        1
    """

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)`` and exit with status 1."""
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
