"""Tests for hl_lightning/lightning/checkpoints.py: checkpoints written whole (also across file
systems and on a full disk), read with one check that names the file, saved on SIGTERM."""

from __future__ import annotations

import json
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


def in_small_tmpfs(tmp_path: Path, size: str, script: str, **env: str) -> Path:
    """Run the bash ``script`` with a ``size`` tmpfs mounted at ``$DISK`` in a mount
    namespace of its own (``unshare -rm``: nothing is mounted outside it, and the tmpfs
    goes with it); the script leaves what it found in ``$OUT``, which this returns."""
    probe = ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {tmp_path}"]
    if shutil.which("unshare") is None or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("needs unshare -rm (a private mount namespace) to mount a small tmpfs")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    mount = f'mount -t tmpfs -o size={size} tmpfs "$DISK" || exit 77\n'
    (tmp_path / "script.sh").write_text("set -u\n" + mount + script)
    variables = {"DISK": str(disk), "OUT": str(out), "PYTHON": sys.executable, **env}
    result = subprocess.run(
        ["unshare", "-rm", "bash", str(tmp_path / "script.sh")],
        env={**os.environ, "OMP_NUM_THREADS": "1", **variables},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


FILL = """"$PYTHON" -c 'import os, sys
stat = os.statvfs(sys.argv[1])
with open(os.path.join(sys.argv[1], "filler"), "wb") as file:
    file.write(bytes(max(0, stat.f_bavail * stat.f_frsize - int(sys.argv[2]))))' "$DISK" """

GROWING_CHECKPOINT = '''
"""Save a checkpoint with hl-train's trainer, fill the disk, save a bigger one over it."""
import json, os
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

disk, out = Path(os.environ["DISK"]), Path(os.environ["OUT"])
target = disk / "run" / "checkpoints" / "last.ckpt"
with initialize_config_module(config_module="hl_lightning.conf", version_base="1.3"):
    cfg = compose(config_name="train", overrides=[f"paths.output_dir={disk / 'run'}"])
trainer = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
model = L.LightningModule()
model.weight = torch.nn.Parameter(torch.full((256, 256), 2.0))  # 256 KiB
trainer.strategy.connect(model)
trainer.save_checkpoint(target)
previous = target.read_bytes()
stat = os.statvfs(disk)  # leave 300 kB
(disk / "filler").write_bytes(bytes(stat.f_bavail * stat.f_frsize - 300_000))
model.register_buffer("moments", torch.ones(4, 256, 256))  # the state grows by 1 MiB
try:
    trainer.save_checkpoint(target)
    error = None
except Exception as caught:
    error = caught
(out / "result.json").write_text(json.dumps({
    "error": type(error).__name__,
    "message": str(error),
    "previous_kept": target.read_bytes() == previous,
    "listing": sorted(os.listdir(target.parent)),
}))
'''


@pytest.mark.slow
def test_a_full_disk_keeps_the_previous_checkpoint_and_names_the_path(tmp_path: Path) -> None:
    """The run directory on a full 2 MB tmpfs, ``$TMPDIR`` elsewhere: Lightning's own writer
    copies its temporary file into the final name, the copy runs out of space half-way and
    the previous ``last.ckpt`` is gone. hl-train's writer stops with the path and the free
    space, and the previous checkpoint is whole."""
    (tmp_path / "child.py").write_text(GROWING_CHECKPOINT)
    script = f'"$PYTHON" "{tmp_path / "child.py"}"\n'
    out = in_small_tmpfs(tmp_path, "2m", script, TMPDIR=str(tmp_path))
    result = json.loads((out / "result.json").read_text())
    target = tmp_path / "disk" / "run" / "checkpoints" / "last.ckpt"
    assert result["error"] == "DiskFullError"
    assert result["message"].startswith(f"no space left on the device to write {target} (")
    assert result["message"].endswith(" free there); the previous file is kept")
    assert result["previous_kept"]
    assert result["listing"] == ["last.ckpt"]  # no temporary file left


RESUME_ON_A_FULL_DISK = f"""
"$HL_TRAIN" "$@" hydra.run.dir="$DISK/run" > "$OUT/first.log" 2>&1 || exit 78
cp -r "$DISK/run/checkpoints" "$OUT/before"
mkdir "$DISK/tmp"
{FILL} 200000
TMPDIR="$DISK/tmp" "$HL_TRAIN" resume="$DISK/run" trainer.max_epochs=2 \
    > "$OUT/second.out" 2> "$OUT/second.err"
echo $? > "$OUT/status"
cp -r "$DISK/run/checkpoints" "$OUT/after"
ls -A "$DISK/run/checkpoints" > "$OUT/listing"
"""


@pytest.mark.slow
def test_a_full_disk_stops_hl_train_with_one_line_and_keeps_the_checkpoints(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    """A run in a 4 MB tmpfs with ``$TMPDIR`` on it too, filled up to 200 kB before a resume:
    the metrics, logs and figures fit, the resume's first checkpoint (440 kB) does not."""
    script = RESUME_ON_A_FULL_DISK.replace('"$@"', " ".join(tiny_run))
    out = in_small_tmpfs(tmp_path, "4m", script, HL_TRAIN=hl_train)
    stderr = (out / "second.err").read_text()
    assert (out / "status").read_text().strip() == "1", stderr[-3000:]
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.startswith("hl-train: error:")]
    disk = tmp_path / "disk"
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


class CountValidations(L.Callback):
    """Count the validation epochs that end (the sanity check aside)."""

    done = 0

    def on_validation_epoch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.done += not trainer.sanity_checking


@pytest.mark.parametrize(("at_step", "saved_step"), [(5, 6), (3, 4)])
def test_sigterm_saves_last_ckpt_at_the_step_where_training_stops(
    at_step: int, saved_step: int, tmp_path: Path
) -> None:
    """The batch under way is finished, and at an epoch's last batch (step 3 of 4 an epoch)
    its validation too; then the fit stops and the callback saves that state."""
    data = SyntheticDataModule(num_train=24, num_val=8, num_test=4, batch_size=4, image_size=16)
    validations = CountValidations()
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_top_k=0, save_last=True)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        limit_train_batches=4,  # an epoch ends before its loader does
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoints, CheckpointOnSigterm(), TerminateAt(at_step), validations],
        plugins=[AtomicCheckpointIO()],
    )
    with pytest.raises(SIGTERMException):
        trainer.fit(unet_model(), datamodule=data)
    checkpoint = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == saved_step  # steps 0 to at_step trained
    assert checkpoint["epoch"] == 1  # in or after epoch 0's end
    assert validations.done == 1  # epoch 0's validation ran whole, never cut by the stop
    assert signal.getsignal(signal.SIGTERM) is not None  # Lightning restored the handler
