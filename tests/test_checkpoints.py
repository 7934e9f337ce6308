"""Tests for hl_lightning/lightning/checkpoints.py: checkpoints written whole (also across file
systems and on a full disk), read with one check that names the file, saved on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from hl_lightning.data import SyntheticDataModule
from hl_lightning.lightning import HierarchicalSegmenter
from hl_lightning.lightning.checkpoints import (
    AtomicCheckpointIO,
    CheckpointError,
    CheckpointOnSigterm,
    newest_intact_checkpoint,
    read_checkpoint,
)


def unet_model() -> HierarchicalSegmenter:
    h = SyntheticDataModule(num_train=2, num_val=2, num_test=2).hierarchy
    backbone = {"_target_": "hl_lightning.models.UNet", "num_classes": None, "width": 4, "depth": 1}
    return HierarchicalSegmenter(backbone, h)


def save(model: L.LightningModule, path: Path) -> Path:
    """Save ``model`` as a Lightning checkpoint at ``path`` (Lightning's own writer); return it."""
    trainer = L.Trainer(accelerator="cpu", max_steps=0, logger=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def intact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(unet_model(), tmp_path_factory.mktemp("ckpt") / "intact.ckpt")


def hl_train_config(*overrides: str) -> Any:
    with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, "paths.output_dir=out"])


# ------------------------------------------------------------------------------ writing
@pytest.mark.parametrize("preset", ["cpu", "ddp_cpu", "gpu", "ddp"])
def test_hl_train_saves_checkpoints_through_the_atomic_writer(preset: str) -> None:
    cfg = hl_train_config(f"trainer={preset}")
    assert instantiate(cfg.trainer.plugins)[0].__class__ is AtomicCheckpointIO
    if preset in ("cpu", "ddp_cpu"):  # buildable here: Lightning hands it to the strategy
        trainer = instantiate(cfg.trainer, logger=False, default_root_dir=None)
        assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    callbacks = [instantiate(spec) for spec in cfg.callbacks.values()]
    assert any(isinstance(callback, CheckpointOnSigterm) for callback in callbacks)


def test_a_checkpoint_replaces_the_previous_one_whole(intact: Path, tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(intact, weights_only=True)
    writer = AtomicCheckpointIO()
    writer.save_checkpoint(checkpoint, path)  # makes the folder
    inode = path.stat().st_ino
    (path.parent / ".last.ckpt.0123abcd.tmp").write_bytes(b"left by a killed writer")
    writer.save_checkpoint(checkpoint, path)
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    loaded = writer.load_checkpoint(path)
    assert loaded["state_dict"].keys() == checkpoint["state_dict"].keys()
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(loaded["state_dict"][key], value)


KILL_AT_FIRST_CHANGE = '''
"""Save a 64 MiB checkpoint twice with hl-train's trainer; SIGKILL this process the moment
the file under the final name first changes during the second save."""
import os, signal, sys, threading, time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate


class Big(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(4096, 4096))


target = Path(sys.argv[1])
with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
    cfg = compose(config_name="train", overrides=[f"paths.output_dir={target.parent}"])
trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
model = Big()
trainer.strategy.connect(model)
trainer.save_checkpoint(target)
old = os.stat(target)


def kill_at_first_change():
    while True:
        try:
            new = os.stat(target)
            changed = (new.st_ino, new.st_size, new.st_mtime_ns) != (
                old.st_ino, old.st_size, old.st_mtime_ns)
        except FileNotFoundError:
            changed = True
        if changed:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.0002)


with torch.no_grad():
    model.weight.fill_(1.0)
threading.Thread(target=kill_at_first_change, daemon=True).start()
trainer.save_checkpoint(target)
time.sleep(60)
'''


@pytest.fixture
def other_file_system(tmp_path: Path) -> Iterator[Path]:
    """Return a fresh folder in /dev/shm (a tmpfs), on another file system than tmp_path."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("needs a writable /dev/shm (a tmpfs) for a second file system")
    if shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is on the file system of the temporary directory here")
    folder = shm / f"hl-test-{uuid.uuid4().hex}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_kill_during_a_save_across_file_systems_leaves_a_whole_checkpoint(
    tmp_path: Path, other_file_system: Path
) -> None:
    """The run directory on a tmpfs, $TMPDIR on another file system: Lightning's own writer
    moves its temporary file over by copying it into the final name, so a kill then leaves
    half a checkpoint where the previous one was. Killed the moment the file first changes,
    hl-train's writer has already put the whole new checkpoint there in one rename."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "child.py").write_text(KILL_AT_FIRST_CHANGE)
    target = other_file_system / "checkpoints" / "last.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    result = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    weight = torch.load(target, weights_only=True)["state_dict"]["weight"]
    assert torch.equal(weight, torch.ones(4096, 4096))  # the new checkpoint, whole


FILL_THE_DISK = """
set -u
mount -t tmpfs -o size=4m tmpfs "$DISK" || exit 77
"$HL_TRAIN" "$@" hydra.run.dir="$DISK/run" > "$OUT/first.log" 2>&1 || exit 78
cp -r "$DISK/run/checkpoints" "$OUT/before"
# leave 200 kB: the metrics, logs and figures fit, a checkpoint (440 kB) does not
"$PYTHON" -c 'import os, sys
stat = os.statvfs(sys.argv[1])
with open(os.path.join(sys.argv[1], "filler"), "wb") as file:
    file.write(bytes(max(0, stat.f_bavail * stat.f_frsize - 200_000)))' "$DISK"
"$HL_TRAIN" resume="$DISK/run" trainer.max_epochs=2 > "$OUT/second.out" 2> "$OUT/second.err"
echo $? > "$OUT/status"
cp -r "$DISK/run/checkpoints" "$OUT/after"
ls -A "$DISK/run/checkpoints" > "$OUT/listing"
"""


@pytest.mark.slow
def test_a_full_disk_stops_hl_train_with_one_line_and_keeps_the_checkpoints(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    """A run in a 4 MB tmpfs (its own mount namespace, ``unshare -rm``), then filled up to
    200 kB before a resume: the resume's first checkpoint does not fit."""
    probe = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path}"]
    if shutil.which("unshare") is None or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("needs unshare -rm (a private mount namespace) to mount a small tmpfs")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    (tmp_path / "fill.sh").write_text(FILL_THE_DISK)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "DISK": str(disk),
        "OUT": str(out),
        "HL_TRAIN": hl_train,
        "PYTHON": sys.executable,
    }
    command = ["unshare", "-rm", "bash", str(tmp_path / "fill.sh"), *tiny_run]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=600)
    assert result.returncode == 0, (out / "first.log").read_text()[-3000:]
    stderr = (out / "second.err").read_text()
    assert (out / "status").read_text().strip() == "1", stderr[-3000:]
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("hl-train: error:")]
    assert line.startswith(f"hl-train: error: no space left on the device to write {disk}/run/")
    assert line.endswith(" free there); the previous file is kept")
    before = sorted(p.name for p in (out / "before").iterdir())
    assert (out / "listing").read_text().split() == before  # no half file, no leftover
    for name in before:  # every checkpoint as it was
        assert (out / "after" / name).read_bytes() == (out / "before" / name).read_bytes()


# ------------------------------------------------------------------------------ reading
def test_an_intact_checkpoint_reads_back(intact: Path) -> None:
    checkpoint = read_checkpoint(intact)
    assert checkpoint["hyper_parameters"]["loss"] == "hierarchical"
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_a_truncated_checkpoint_names_the_file(intact: Path, tmp_path: Path) -> None:
    data = intact.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        path = tmp_path / "last.ckpt"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        message = str(info.value)
        assert message.startswith(f"the checkpoint {path} is truncated or damaged")
        assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("text", "is not a checkpoint file (not a torch file)"),
        ("empty", "is empty"),
        ("state_dict_only", "is not a HierarchicalSegmenter checkpoint (no state_dict"),
        ("other_module", "is not a HierarchicalSegmenter checkpoint (no hierarchy"),
    ],
)
def test_a_foreign_file_names_the_file_and_what_it_lacks(
    content: str, problem: str, intact: Path, tmp_path: Path
) -> None:
    path = tmp_path / "model.ckpt"
    if content == "text":
        path.write_text("epoch,step\n0,1\n")
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "state_dict_only":
        torch.save(torch.load(intact, weights_only=True)["state_dict"], path)
    else:
        save(L.LightningModule(), path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value).startswith(f"the checkpoint {path} {problem}")


def test_a_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint file {tmp_path}/none.ckpt"):
        read_checkpoint(tmp_path / "none.ckpt")


def test_non_finite_weights_name_the_entries(intact: Path, tmp_path: Path) -> None:
    checkpoint = torch.load(intact, weights_only=True)
    names = [k for k, v in checkpoint["state_dict"].items() if v.is_floating_point()]
    checkpoint["state_dict"][names[0]].view(-1)[0] = float("nan")
    checkpoint["state_dict"][names[2]].view(-1)[-1] = float("inf")
    path = tmp_path / "nan.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value) == (
        f"the checkpoint {path} holds non-finite weights (NaN or infinity) in "
        f"{names[0]}, {names[2]}"
    )


def test_the_newest_intact_checkpoint_skips_broken_ones(intact: Path, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    assert newest_intact_checkpoint(folder) is None
    for age, name in enumerate(["last.ckpt", "epoch002.ckpt", "epoch001.ckpt", "epoch000.ckpt"]):
        shutil.copy(intact, folder / name)
        os.utime(folder / name, (1e9 - age, 1e9 - age))  # last.ckpt the newest
    (folder / "last.ckpt").write_bytes(intact.read_bytes()[:1000])
    (folder / "epoch002.ckpt").write_text("not a checkpoint")
    (folder / ".last.ckpt.0123abcd.tmp").write_bytes(intact.read_bytes())
    assert newest_intact_checkpoint(folder) == folder / "epoch001.ckpt"


# ------------------------------------------------------------------------------ SIGTERM
class TerminateAt(L.Callback):
    """Send this process SIGTERM at the start of a training step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_saves_last_ckpt_at_the_step_where_training_stops(tmp_path: Path) -> None:
    """Lightning finishes the batch under way and stops; the callback saves that state."""
    data = SyntheticDataModule(num_train=16, num_val=4, num_test=4, batch_size=4, image_size=16)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_top_k=0, save_last=True)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoints, CheckpointOnSigterm(), TerminateAt(5)],
        plugins=[AtomicCheckpointIO()],
    )
    with pytest.raises(SIGTERMException):
        trainer.fit(unet_model(), datamodule=data)
    checkpoint = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 6 and checkpoint["epoch"] == 1  # steps 0-5 trained
    assert signal.getsignal(signal.SIGTERM) is not None  # Lightning restored the handler
