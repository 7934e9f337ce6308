"""Tests for hl_lightning/atomic.py: a file is replaced whole or not at all."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from hl_lightning import atomic
from hl_lightning.atomic import DiskFullError, atomic_path, atomic_write, remove_leftovers


def test_a_write_replaces_the_file_whole_as_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("old\n")
    before = path.stat().st_ino
    with atomic_write(path, newline="") as file:
        file.write("a,b\r\n")
        assert path.read_text() == "old\n"  # untouched until the block ends
    assert path.read_bytes() == b"a,b\r\n"
    assert path.stat().st_ino != before  # renamed over the old file, never written in place
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]
    with atomic_write(path, "wb") as binary:
        binary.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"


def test_a_new_file_gets_the_mode_of_an_ordinary_one(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "new.txt") as file:
        file.write("x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "new.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode


def test_an_error_while_writing_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "figure.png"
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match="drawing failed"), atomic_path(path) as temporary:
        temporary.write_bytes(b"half")
        raise ValueError("drawing failed")
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]  # no temporary left


def test_a_full_disk_names_the_path_and_the_free_space_and_keeps_the_previous_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"previous checkpoint")
    with pytest.raises(DiskFullError) as info, atomic_write(path, "wb") as file:
        file.write(b"half of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write to a full disk
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"no space left on the device to write {path} (")
    assert message.endswith(" free there); the previous file is kept")
    free = shutil.disk_usage(tmp_path).free
    assert f"{free / 2**30:.1f} GiB" in message or f"{free / 2**20:.1f} MiB" in message
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_quota_is_a_full_disk_too(tmp_path: Path) -> None:
    with pytest.raises(DiskFullError, match="quota reached to write"), atomic_path(tmp_path / "a"):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))


def test_a_failing_flush_to_disk_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk can surface only when the data is flushed (fsync): the rename must wait."""
    path = tmp_path / "metrics.csv"
    path.write_text("previous\n")

    def full(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"metrics\.csv"), atomic_write(path) as file:
        file.write("new\n")
    assert path.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_leftovers_of_killed_writers_are_removed_for_that_file_only(tmp_path: Path) -> None:
    (tmp_path / ".last.ckpt.0123abcd.tmp").write_bytes(b"half")
    (tmp_path / ".epoch000.ckpt.0123abcd.tmp").write_bytes(b"half")
    (tmp_path / "last.ckpt").write_bytes(b"whole")
    assert [p.name for p in remove_leftovers(tmp_path / "last.ckpt")] == [".last.ckpt.0123abcd.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".epoch000.ckpt.0123abcd.tmp",
        "last.ckpt",
    ]
