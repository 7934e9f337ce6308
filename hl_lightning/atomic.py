"""Atomic file writes: a file is replaced whole or not at all, whatever stops the writer.

Every file the package writes goes through here. The bytes go to a hidden temporary file
beside the target (``.<name>.<random>.tmp``: the same directory, so the same file system),
which is flushed and fsynced, then renamed over the target (one atomic step on POSIX); the
directory is fsynced too, so that the rename survives a power cut. A kill at any moment
leaves the previous file (or none) under the target's name, and at worst a stray
temporary file beside it. A full disk raises :class:`DiskFullError`, which names the path
and the free space, and leaves the previous file as it was.

The rename needs the temporary file on the target's file system: a temporary file in
``$TMPDIR`` moved to a run directory on another one is copied over the target, and a kill
or a full disk during that copy leaves a half file under the final name.
"""

from __future__ import annotations

import errno
import glob
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Literal

__all__ = ["DiskFullError", "atomic_path", "atomic_write", "is_local", "remove_leftovers"]

_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No room for a file (no space left, or a quota reached); the previous file is kept.

    ``str(error)`` is one line naming the path and the free space on its file system.

    Example:
        >>> print(DiskFullError("a/last.ckpt", 3 * 2**20))  # doctest: +NORMALIZE_WHITESPACE
        no space left on the device to write a/last.ckpt (3.0 MiB free there);
        the previous file is kept
    """

    def __init__(self, path: str | Path, free: int, code: int = errno.ENOSPC) -> None:
        super().__init__(code, os.strerror(code), str(path))
        self.free = free

    def __str__(self) -> str:
        reason = "no space left on the device" if self.errno == errno.ENOSPC else "quota reached"
        return (
            f"{reason} to write {self.filename} ({_size(self.free)} free there); "
            "the previous file is kept"
        )


def _size(count: int) -> str:
    """Return a byte count for people: ``512 B``, ``3.0 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _temporary(target: Path) -> Path:
    """Create and return an empty hidden file beside ``target`` (mode 0o666 less the umask)."""
    while True:
        path = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        return path


def _disk_full(target: Path, error: OSError) -> DiskFullError:
    """Return the DiskFullError of ``error`` (ENOSPC or EDQUOT) writing ``target``."""
    return DiskFullError(target, shutil.disk_usage(target.parent).free, error.errno or 0)


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    """Flush ``path`` (a file or a directory) to the disk."""
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that takes a path; on a clean exit
    it becomes ``path`` in one step (fsynced, renamed, the directory fsynced).

    On an error the temporary file is removed and ``path`` is untouched; an error of a full
    disk or quota becomes a :class:`DiskFullError`. The directory must exist (an error
    otherwise names ``path``).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / "note.txt") as temporary:
        ...     _ = temporary.write_text("whole")
        >>> (folder / "note.txt").read_text(), len(list(folder.iterdir()))
        ('whole', 1)
    """
    target = Path(path)
    try:
        temporary = _temporary(target)
    except OSError as error:  # no such folder, no permission: name the file asked for
        if error.errno in _FULL:
            raise _disk_full(target, error) from error
        raise type(error)(error.errno, error.strerror, str(target)) from error
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, target)
    except BaseException as error:
        with suppress(FileNotFoundError):
            temporary.unlink()
        if isinstance(error, OSError) and error.errno in _FULL:
            raise _disk_full(target, error) from error
        raise
    try:  # the rename itself to the disk; some file systems cannot sync a directory
        _fsync(target.parent)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


@contextmanager
def atomic_write(
    path: str | Path,
    mode: Literal["w", "wb"] = "w",
    encoding: str | None = "utf-8",
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Yield a file open for writing that replaces ``path`` whole when the block ends.

    ``mode`` is ``"w"`` (text, in ``encoding``, with ``newline`` as :func:`open`) or
    ``"wb"``; errors as :func:`atomic_path`.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "rows.csv"
        >>> with atomic_write(path) as file:
        ...     _ = file.write("a,b\\n1,2\\n")
        >>> path.read_text()
        'a,b\\n1,2\\n'
    """
    with atomic_path(path) as temporary:
        if mode == "wb":
            with temporary.open("wb") as binary:
                yield binary
        else:
            with temporary.open("w", encoding=encoding, newline=newline) as text:
                yield text


def is_local(path: str | Path) -> bool:
    """Return whether ``path`` is a local file path, not a URL (``s3://...``, ``file://...``).

    Example:
        >>> is_local("runs/a/last.ckpt"), is_local("s3://bucket/last.ckpt")
        (True, False)
    """
    return "://" not in str(path)


def remove_leftovers(path: str | Path) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left beside it; return them.

    Only where one process writes ``path`` at a time (Lightning writes checkpoints from
    rank 0 alone): another writer's temporary file would go too.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".last.ckpt.0a1b2c3d.tmp").write_bytes(b"half")
        >>> [p.name for p in remove_leftovers(folder / "last.ckpt")]
        ['.last.ckpt.0a1b2c3d.tmp']
    """
    target = Path(path)
    removed = []
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        with suppress(FileNotFoundError):
            leftover.unlink()
            removed.append(leftover)
    return removed
