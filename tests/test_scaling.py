"""Scaling out with hl-train: trainer presets, mixed precision, DDP, cluster sweeps, resume.

Lightning does the distribution, precision and checkpointing, Hydra's submitit launcher
the sweeps; these tests pin that the shipped configs wire them up and that the results
are right: bf16 training tracks fp32, two gloo processes report the metrics of one, a
2-job submitit sweep finishes, and a run killed with SIGKILL mid-epoch or at an epoch's
end resumes to the uninterrupted run's rows, each kept exactly once.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import submitit
import torch
from _compose import make_config
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DistributedSampler

from hl_lightning.cli.train import train
from hl_lightning.data.datamodule import EpochSeededSampler, ResumableDataLoader
from hl_lightning.lightning.module import HierarchicalSegmenter

# seconds-long runs: tiny data and network, CSV logging only; 2 training batches an epoch
LEVELS = ("kind", "family", "class")


def wait_for_pause(out: Path, process: subprocess.Popen[Any], log: Path) -> None:
    """Wait (2 minutes at most) until the run has written ``out/paused``; fail, with the end
    of its log, if it exits first."""
    deadline = time.monotonic() + 120
    while not (out / "paused").exists():
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the run never reached the pause"
        time.sleep(0.1)


def environment(**env: str) -> dict[str, str]:
    """Return this process's environment on one torch thread (tiny tensors), plus env."""
    return {**os.environ, "OMP_NUM_THREADS": "1", **env}


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command in cwd and return its result."""
    return subprocess.run(
        args, cwd=cwd, env=environment(**env), capture_output=True, text=True, timeout=300
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def row_kinds(rows: list[dict[str, str]]) -> Counter[tuple[str, str, str]]:
    """Count the rows by (step, epoch, kind): kind is the first of its logged keys."""
    return Counter(
        (
            row["step"],
            row["epoch"],
            min(k for k, v in row.items() if v and k not in ("step", "epoch")),
        )
        for row in rows
    )


# ---------------------------------------------------------------------------- trainer presets
@pytest.mark.parametrize("precision", ["32", "16-mixed", "bf16-mixed"])
def test_precision_is_a_command_line_override(precision: str) -> None:
    for trainer in ("cpu", "gpu", "ddp", "ddp_cpu"):
        cfg = make_config([f"trainer={trainer}", f"trainer.precision={precision}"])
        assert str(cfg.trainer.precision) == precision


def test_ddp_presets_compose() -> None:
    cfg = make_config(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"])
    trainer = cfg.trainer
    assert (trainer.accelerator, trainer.strategy, trainer.devices, trainer.num_nodes) == (
        "gpu",
        "ddp",
        4,
        2,
    )
    assert trainer.sync_batchnorm is False and trainer.precision == "16-mixed"
    assert make_config(["trainer=ddp", "trainer.sync_batchnorm=true"]).trainer.sync_batchnorm

    cpu = make_config(["trainer=ddp_cpu"]).trainer
    assert (cpu.accelerator, cpu.devices, cpu.strategy, str(cpu.precision)) == (
        "cpu",
        2,
        "ddp",
        "32",
    )
    built = instantiate(cpu, default_root_dir=None, logger=False)  # no process starts yet
    assert isinstance(built.strategy, DDPStrategy)
    assert built.num_devices == 2 and built.num_nodes == 1


def test_bf16_mixed_on_cpu_is_what_16_mixed_falls_back_to() -> None:
    cfg = make_config(["trainer.precision=16-mixed"])
    trainer = instantiate(cfg.trainer, default_root_dir=None, logger=False)
    assert trainer.precision == "bf16-mixed"  # Lightning: no fp16 autocast on CPU


# ---------------------------------------------------------------------------- mixed precision
class PrecisionProbe(L.Callback):
    """Record each training step's loss, its dtype and the dtype of the backbone's logits."""

    steps: ClassVar[list[tuple[float, torch.dtype, torch.dtype]]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.logits_dtype = torch.float64  # replaced at the first forward pass
        pl_module.backbone.register_forward_hook(self._record_logits)

    def _record_logits(self, module: Any, inputs: Any, output: torch.Tensor) -> None:
        self.logits_dtype = output.dtype

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, *_: Any) -> None:
        loss = outputs["loss"]
        PrecisionProbe.steps.append((loss.item(), loss.dtype, self.logits_dtype))


def probed_run(
    tmp_path: Path, precision: str, tiny_run: list[str]
) -> tuple[list, dict[str, float]]:
    PrecisionProbe.steps = []
    probe = f"+callbacks.probe._target_={__name__}.PrecisionProbe"
    overrides = [*tiny_run, "trainer.max_epochs=3", "trainer.deterministic=true", "test=false"]
    metrics = train(make_config([*overrides, probe, f"trainer.precision={precision}"], tmp_path))
    return PrecisionProbe.steps, metrics


def test_bf16_mixed_training_tracks_fp32(tmp_path: Path, tiny_run: list[str]) -> None:
    fp32, fp32_metrics = probed_run(tmp_path / "fp32", "32", tiny_run)
    bf16, bf16_metrics = probed_run(tmp_path / "bf16", "bf16-mixed", tiny_run)
    assert len(bf16) == len(fp32) == 6  # 3 epochs of 2 batches
    assert {logits for _, _, logits in fp32} == {torch.float32}
    assert {logits for _, _, logits in bf16} == {torch.bfloat16}  # the network ran in bf16
    assert {dtype for _, dtype, _ in bf16} == {torch.float32}  # ... the loss in fp32
    losses = [loss for loss, _, _ in bf16]
    assert all(math.isfinite(loss) for loss in losses)
    # same seed, same batches: bf16 logits move the fp32 losses by ~1e-4 (relative)
    for (want, _, _), got in zip(fp32, losses, strict=True):
        assert got == pytest.approx(want, rel=5e-3)
    for key in ("val/loss", *(f"val/loss/{level}" for level in LEVELS)):
        assert math.isfinite(bf16_metrics[key])
        assert bf16_metrics[key] == pytest.approx(fp32_metrics[key], rel=5e-3)


# ---------------------------------------------------------------------------- DDP on CPU
@pytest.mark.slow
def test_ddp_two_processes_log_the_single_process_validation(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    """hl-train trainer=ddp_cpu (2 gloo processes) logs what 1 process measures on its weights."""
    out = tmp_path / "run"
    # no ignored edge pixels: every image holds as many labelled pixels, so the mean of the
    # two processes' mean losses is the mean over all pixels, as in one process
    # num_val 16: divisible by 2 processes x batch size 8, no padded samples in DDP
    overrides = [
        *tiny_run,
        "data.num_val=16",
        "+data.ignore_edges=false",
        "trainer.deterministic=true",
        "test=false",
    ]
    result = run([hl_train, *overrides, "trainer=ddp_cpu", f"hydra.run.dir={out}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "GLOBAL_RANK: 1" in output and "distributed_backend=gloo" in output
    check_single_process_validation(out, overrides, tmp_path)


def check_single_process_validation(out: Path, overrides: list[str], tmp_path: Path) -> None:
    """The validation that the distributed run in ``out`` logged is what one process measures
    on its last checkpoint: the same per-level mIoU and accuracy and severity (summed
    confusion states), the same losses up to rounding."""
    (logged,) = [row for row in read_rows(out / "csv" / "metrics.csv") if row["val/miou"]]

    cfg = make_config([*overrides, "trainer=cpu"], tmp_path / "single")
    model = HierarchicalSegmenter.load_from_checkpoint(out / "checkpoints" / "last.ckpt")
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, deterministic=True,
    )  # fmt: skip
    (single,) = trainer.validate(model, datamodule=instantiate(cfg.data))
    metric_keys = [k for k in single if k.startswith(("val/miou", "val/acc", "val/severity"))]
    assert len(metric_keys) == 2 * len(LEVELS) + 2  # per-level mIoU and accuracy, severity
    for key in metric_keys:  # summed confusion states: exactly the same numbers
        assert float(logged[key]) == single[key], key
    for key in ("val/loss", *(f"val/loss/{level}" for level in LEVELS)):
        assert float(logged[key]) == pytest.approx(single[key], rel=1e-5), key


NODE_PROBE = '''
"""Record where this process ran: its node and global rank, the world Lightning saw."""
import json
from pathlib import Path

import lightning as L


class NodeProbe(L.Callback):
    def on_train_start(self, trainer, pl_module):
        record = {
            "node_rank": trainer.node_rank,
            "global_rank": trainer.global_rank,
            "local_rank": trainer.local_rank,
            "world_size": trainer.world_size,
            "num_nodes": trainer.num_nodes,
            "environment": type(trainer.strategy.cluster_environment).__name__,
            "backend": trainer.strategy._process_group_backend,
        }
        path = Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps(record))
'''


def free_port() -> int:
    """Return a TCP port that nothing listens on at 127.0.0.1 (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_rehearsed_on_localhost_log_the_single_process_validation(
    tmp_path: Path, tiny_run: list[str]
) -> None:
    """A 2-node x 1-process launch on one machine: two torchrun agents, node ranks 0 and 1,
    meet at 127.0.0.1 (what each node of a cluster runs, with its own --node-rank); gloo
    on the CPU. Lightning takes the ranks from torchrun and logs what one process measures."""
    (tmp_path / "node_probe.py").write_text(NODE_PROBE)
    out = tmp_path / "run"
    overrides = [
        *tiny_run,
        "data.num_val=16",  # 2 nodes x batch size 8: no padded samples
        "+data.ignore_edges=false",
        "trainer.deterministic=true",
        "test=false",
    ]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1"]
    torchrun += ["--master-addr=127.0.0.1", f"--master-port={free_port()}"]
    app = ["-m", "hl_lightning.cli.train", *overrides, "trainer=ddp_cpu", "trainer.devices=1"]
    app += ["trainer.num_nodes=2", f"hydra.run.dir={out}"]
    app.append("+callbacks.probe._target_=node_probe.NodeProbe")
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = environment(PYTHONPATH=os.pathsep.join(path))
    logs = [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    with logs[0].open("w") as log0, logs[1].open("w") as log1:
        nodes = [
            subprocess.Popen(
                [*torchrun, f"--node-rank={rank}", *app],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for rank, log in ((0, log0), (1, log1))
        ]
        codes = [node.wait(timeout=300) for node in nodes]
    assert codes == [0, 0], "\n".join(log.read_text()[-2000:] for log in logs)
    records = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["node_rank"], r["global_rank"], r["local_rank"]) for r in records] == [
        (0, 0, 0),
        (1, 1, 0),
    ]
    for record in records:
        assert (record["world_size"], record["num_nodes"]) == (2, 2)
        assert (record["environment"], record["backend"]) == ("TorchElasticEnvironment", "gloo")
    assert "val per level:" in logs[0].read_text()
    assert "val per level:" not in logs[1].read_text()  # printed by rank 0 only
    check_single_process_validation(out, overrides, tmp_path)


# ---------------------------------------------------------------------------- cluster sweeps
def test_slurm_preset_sizes_the_job_from_the_trainer(tmp_path: Path, monkeypatch: Any) -> None:
    """hydra/launcher=slurm writes an sbatch script with one task per device on every node."""
    fake_bin = tmp_path / "bin"  # submitit looks for srun; nothing is submitted
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    overrides += ["hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    cfg = make_config(overrides)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    scripts = []

    def submit(executor: submitit.AutoExecutor, *args: Any) -> list:
        scripts.append(executor._executor._make_submission_file_text("hl-train", "uid"))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", submit)
    launcher.launch([["loss=hierarchical"], ["loss=flat"]], initial_job_idx=0)
    (script,) = scripts
    for line in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu"):
        assert f"#SBATCH {line}\n" in script
    assert "\nsrun " in script  # one hl-train task per GPU, which Lightning's DDP finds


@pytest.mark.slow
def test_submitit_local_sweep_runs_both_jobs(
    tmp_path: Path, tiny_run: list[str], hl_train: str
) -> None:
    sweep = tmp_path / "sweep"
    args = [hl_train, "-m", "hydra/launcher=submitit_local", "loss=hierarchical,flat", *tiny_run]
    result = run([*args, "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0_loss=hierarchical", "1_loss=flat"]
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # submitit ran them
    for job in jobs:
        rows = read_rows(job / "csv" / "metrics.csv")
        assert any(row["test/miou/class"] for row in rows) and any(row["val/miou"] for row in rows)
        assert (job / "checkpoints" / "last.ckpt").is_file()


# ---------------------------------------------------------------------------- resume after a kill
PAUSE = '''
"""Stop training at the start of a given step and wait there to be killed."""
import time
from pathlib import Path

import lightning as L


class Pause(L.Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            (Path(trainer.default_root_dir) / "paused").touch()
            time.sleep(300)
'''


@pytest.fixture(scope="session")
def resumable(tiny_run: list[str]) -> list[str]:
    """3 epochs of 4 batches, a step checkpoint every 2 steps, deterministic."""
    return [
        *tiny_run,
        "data.num_train=32",
        "trainer.max_epochs=3",
        "trainer.deterministic=true",
        "checkpoint_every_n_steps=2",
    ]


@pytest.fixture(scope="module")
def uninterrupted(
    tmp_path_factory: pytest.TempPathFactory, hl_train: str, resumable: list[str]
) -> Path:
    """Return the directory of an uninterrupted run."""
    out = tmp_path_factory.mktemp("uninterrupted")
    result = run([hl_train, *resumable, f"hydra.run.dir={out}"], out.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def with_tmp_path_importable(tmp_path: Path) -> dict[str, str]:
    """Return the child environment with ``tmp_path`` (a callback module there) importable."""
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    return environment(PYTHONPATH=os.pathsep.join(path))


def kill_and_resume(
    tmp_path: Path, at_step: int, ckpt_path: str, hl_train: str, resumable: list[str]
) -> tuple[Path, str]:
    """Run, SIGKILL the run at the start of ``at_step``, resume it from ``ckpt_path`` (the
    run directory is ``{run}``); return the run directory and the resumed run's log.

    Every process of the run is killed at once (its process group: under DDP both ranks),
    as when a node goes down."""
    (tmp_path / "pause.py").write_text(PAUSE)
    out = tmp_path / "run"
    args = [hl_train, *resumable, f"hydra.run.dir={out}"]
    pause = ["+callbacks.pause._target_=pause.Pause", f"+callbacks.pause.at_step={at_step}"]
    env = with_tmp_path_importable(tmp_path)
    log = tmp_path / "killed.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [*args, *pause],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        ) as process,
    ):
        wait_for_pause(out, process, log)
        assert (out / "checkpoints" / "last.ckpt").is_file()
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    resumed = run([*args, f"ckpt_path={ckpt_path.format(run=out)}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert f"Restored all states from the checkpoint at {out}/checkpoints/last.ckpt" in log
    return out, log


def final_metrics(out: Path) -> dict[str, str]:
    """Return the last validation row and the test row of a run, merged."""
    rows = read_rows(out / "csv" / "metrics.csv")
    val = [row for row in rows if row["val/miou"]][-1]
    (test,) = [row for row in rows if row["test/miou"]]
    return {k: v for row in (val, test) for k, v in row.items() if v}


def assert_same_rows_but_the_interrupted_epochs_training_means(
    got: list[dict[str, str]], want: list[dict[str, str]], epoch: int
) -> int:
    """Check a resumed run's metrics rows against an uninterrupted run's: every row once
    (none lost, none twice) with every value, except the training means of the epoch that
    was interrupted mid-way (see below); return that row's index."""
    assert row_kinds(got) == row_kinds(want)
    (i,) = [
        i for i, row in enumerate(want) if row["epoch"] == str(epoch) and row["train/loss_epoch"]
    ]
    assert got[:i] + got[i + 1 :] == want[:i] + want[i + 1 :]  # every other row, every value
    assert {k for k, v in got[i].items() if v} == {k for k, v in want[i].items() if v}
    assert all(k.startswith("train/") for k in got[i] if got[i][k] != want[i][k])
    return i


@pytest.mark.slow
def test_killed_mid_epoch_run_resumes_to_the_same_metrics(
    tmp_path: Path, uninterrupted: Path, hl_train: str, resumable: list[str]
) -> None:
    """SIGKILL at step 7 of 12 (mid-epoch; last checkpoint: step 6, in epoch 1), then resume.

    The training loader is stateful (ResumableDataLoader): Lightning saves how far into
    the epoch it got, and the resumed run trains on the rest of that epoch's order. The
    CSV file keeps the rows of the killed run and holds every training step, every
    epoch's validation and the test exactly once, with the uninterrupted run's values;
    only the interrupted epoch's training means differ: Lightning 2.6 checkpoints neither
    its own epoch accumulators nor the module's training metrics, so they cover the
    batches trained after the resume.
    """
    out, log = kill_and_resume(tmp_path, 7, "last", hl_train, resumable)  # Lightning finds it
    want = read_rows(uninterrupted / "csv" / "metrics.csv")
    got = read_rows(out / "csv" / "metrics.csv")
    assert len(got) == 12 + 3 + 3 + 1  # steps, validations, epoch summaries, test
    assert "not resumable" not in log
    i = assert_same_rows_but_the_interrupted_epochs_training_means(got, want, epoch=1)
    assert final_metrics(out) == final_metrics(uninterrupted)
    # the interrupted epoch's training means: over steps 6 and 7 (the resumed run's)
    step_loss = {
        int(row["step"]): float(row["train/loss_step"]) for row in want if row["train/loss_step"]
    }
    assert float(want[i]["train/loss_epoch"]) == pytest.approx(
        sum(step_loss[s] for s in range(4, 8)) / 4
    )
    assert float(got[i]["train/loss_epoch"]) == pytest.approx((step_loss[6] + step_loss[7]) / 2)
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    (loader_state,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader_state == {"epoch": 3, "samples": 0}  # saved after the last epoch


class RecordingDataset(torch.utils.data.Dataset):
    """Items 0..n-1 (as tensors); records the indices it was asked for."""

    def __init__(self, n: int) -> None:
        self.n, self.loaded = n, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> torch.Tensor:
        self.loaded.append(index)
        return torch.tensor(index)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumable_loader_continues_its_epoch(num_workers: int) -> None:
    """State after 2 batches of epoch 1 -> a new loader yields that epoch's remaining batches.

    The skipped samples are not loaded; the order comes from the main process's sampler,
    with workers too; a pass over another epoch is whole.
    """

    def loader(data: RecordingDataset) -> ResumableDataLoader:
        sampler = EpochSeededSampler(data, seed=3)
        return ResumableDataLoader(data, batch_size=4, sampler=sampler, num_workers=num_workers)

    first = loader(RecordingDataset(18))
    first.sampler.set_epoch(1)
    batches = iter(first)
    done = [next(batches).tolist() for _ in range(2)]
    state = first.state_dict()
    assert state == {"epoch": 1, "samples": 8}
    rest = [batch.tolist() for batch in batches]
    assert [len(batch) for batch in done + rest] == [4, 4, 4, 4, 2]
    assert first.state_dict() == {"epoch": 2, "samples": 0}  # the pass is over

    data = RecordingDataset(18)
    resumed = loader(data)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)  # what Lightning does after loading the state
    assert [batch.tolist() for batch in resumed] == rest
    if num_workers == 0:
        assert sorted(data.loaded) == sorted(i for batch in rest for i in batch)
    resumed.sampler.set_epoch(2)
    assert len([batch for batch in resumed]) == 5  # the state was used up

    other = loader(RecordingDataset(18))
    other.load_state_dict(state)
    other.sampler.set_epoch(2)  # another epoch (a checkpoint of a finished epoch): whole
    assert len([batch for batch in other]) == 5


def test_resumable_loader_drops_the_batches_of_another_epoch_seeded_sampler() -> None:
    """With Lightning's DistributedSampler (DDP) the first batches are loaded and dropped."""

    def loader() -> ResumableDataLoader:
        data = RecordingDataset(20)
        sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=5)
        sampler.set_epoch(1)
        return ResumableDataLoader(data, batch_size=2, sampler=sampler)

    first = loader()
    batches = iter(first)
    next(batches)
    state = first.state_dict()
    assert state == {"epoch": 1, "samples": 2}
    resumed = loader()
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == [b.tolist() for b in batches]


def epoch_seeded_training_order(resumable: list[str]) -> bool:
    """Return whether the data module's training order is seeded per epoch (``set_epoch``)."""
    datamodule = instantiate(make_config(resumable).data)
    datamodule.setup("fit")
    return hasattr(datamodule.train_dataloader().sampler, "set_epoch")


@pytest.mark.slow
def test_killed_at_epoch_end_run_resumes_to_the_same_metrics(
    tmp_path: Path, uninterrupted: Path, hl_train: str, resumable: list[str]
) -> None:
    """SIGKILL at step 5 of 12, in epoch 1 (last checkpoint: after epoch 0's validation).

    The resumed run reaches the uninterrupted run's metrics exactly if the training order
    of an epoch depends on the seed and the epoch alone: a sampler with ``set_epoch``,
    which Lightning calls every epoch (its DistributedSampler under DDP has one), as the
    data modules' EpochSeededSampler does.
    """
    assert epoch_seeded_training_order(resumable)
    out, log = kill_and_resume(tmp_path, 5, "{run}/checkpoints/last.ckpt", hl_train, resumable)
    want = read_rows(uninterrupted / "csv" / "metrics.csv")
    got = read_rows(out / "csv" / "metrics.csv")
    assert "not resumable" not in log
    assert got == want  # every row, every value


# ---------------------------------------------------------------------------- DDP kill, SIGTERM
@pytest.fixture(scope="module")
def ddp_resumable(resumable: list[str]) -> list[str]:
    """Two gloo processes, each 4 batches an epoch (64 images), a checkpoint every 2 steps."""
    return [*resumable, "data.num_train=64", "trainer=ddp_cpu"]


@pytest.mark.slow
def test_killed_mid_epoch_ddp_run_resumes_to_the_same_metrics(
    tmp_path: Path, hl_train: str, ddp_resumable: list[str]
) -> None:
    """Both processes of a DDP run SIGKILLed at step 7 of 12 (last checkpoint: step 6, in
    epoch 1), then resumed on 2 processes: the rows of an uninterrupted DDP run, but for the
    interrupted epoch's training means (as on one process). The uninterrupted run goes on
    beside the killed one (independent runs: the same rows either way, in half the time)."""
    uninterrupted = tmp_path / "uninterrupted"
    with ThreadPoolExecutor(max_workers=1) as pool:
        args = [hl_train, *ddp_resumable, f"hydra.run.dir={uninterrupted}"]
        running = pool.submit(run, args, tmp_path)
        out, log = kill_and_resume(tmp_path, 7, "last", hl_train, ddp_resumable)
        result = running.result()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in log and "distributed_backend=gloo" in log
    want = read_rows(uninterrupted / "csv" / "metrics.csv")
    got = read_rows(out / "csv" / "metrics.csv")
    assert len(got) == 12 + 3 + 3 + 1
    assert "not resumable" not in log
    assert_same_rows_but_the_interrupted_epochs_training_means(got, want, epoch=1)
    assert final_metrics(out) == final_metrics(uninterrupted)


WAIT_FOR_SIGTERM = '''
"""Wait at the start of a given step, the first time, until SIGTERM has been sent."""
import time
from pathlib import Path

import lightning as L


class WaitForSigterm(L.Callback):
    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        folder = Path(trainer.default_root_dir)
        if trainer.global_step == self.at_step and not (folder / "sent").exists():
            (folder / "paused").touch()
            deadline = time.monotonic() + 120
            while not (folder / "sent").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
'''


def stop_with_sigterm(tmp_path: Path, args: list[str], at_step: int) -> tuple[Path, str]:
    """Run hl-train (``args``) into ``tmp_path/run``, send it SIGTERM at the start of
    ``at_step``, check it stops with status 143; return the run directory and its output."""
    (tmp_path / "sigterm_pause.py").write_text(WAIT_FOR_SIGTERM)
    out = tmp_path / "run"
    pause = ["+callbacks.pause._target_=sigterm_pause.WaitForSigterm"]
    pause.append(f"+callbacks.pause.at_step={at_step}")
    log = tmp_path / "stopped.log"
    with (
        log.open("w") as output,
        subprocess.Popen(
            [*args, *pause, f"hydra.run.dir={out}"],
            cwd=tmp_path,
            env=with_tmp_path_importable(tmp_path),
            stdout=output,
            stderr=output,
            start_new_session=True,
        ) as process,
    ):
        wait_for_pause(out, process, log)
        process.send_signal(signal.SIGTERM)  # to the first process only, at once
        (out / "sent").touch()
        try:
            assert process.wait(timeout=120) == 128 + signal.SIGTERM, log.read_text()[-3000:]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # nothing left behind if it hung
    text = log.read_text()
    assert "Traceback" not in text
    last = out / "checkpoints" / "last.ckpt"
    assert f"SIGTERM: saved the run at step {at_step + 1} in {last}" in text
    assert f"hl-train: stopped by SIGTERM; continue with hl-train resume={out}\n" in text
    assert torch.load(last, weights_only=False)["global_step"] == at_step + 1
    return out, text


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_a_checkpoint_the_run_resumes_from(
    tmp_path: Path, uninterrupted: Path, hl_train: str, resumable: list[str]
) -> None:
    """SIGTERM (what a cluster sends before it kills) at step 5 of 12, in epoch 1, with no
    step checkpoints: Lightning finishes step 5 and stops; hl-train saves last.ckpt there,
    says how to continue and exits with 143 (128 + SIGTERM), not 0; ``resume=<run>`` then
    reaches the uninterrupted run's rows."""
    args = [hl_train, *resumable, "checkpoint_every_n_steps=0"]
    out, _ = stop_with_sigterm(tmp_path, args, at_step=5)
    resumed = subprocess.run(
        [hl_train, f"resume={out}"],
        cwd=tmp_path,
        env=with_tmp_path_importable(tmp_path),
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want = read_rows(uninterrupted / "csv" / "metrics.csv")
    got = read_rows(out / "csv" / "metrics.csv")
    assert_same_rows_but_the_interrupted_epochs_training_means(got, want, epoch=1)
    assert final_metrics(out) == final_metrics(uninterrupted)


@pytest.mark.slow
def test_sigterm_stops_a_ddp_run_with_a_checkpoint(
    tmp_path: Path, hl_train: str, ddp_resumable: list[str]
) -> None:
    """SIGTERM to the first of two DDP processes, as soon as one of them reaches step 5
    (the other may be anywhere): both stop after the same step and save last.ckpt there.
    With Lightning 2.6's own handling the run can hang here (a collective inside its
    signal handler meets another collective of the other process)."""
    _, text = stop_with_sigterm(
        tmp_path, [hl_train, *ddp_resumable, "checkpoint_every_n_steps=0"], at_step=5
    )
    assert "[rank: 1] Received SIGTERM" in text
