"""The sections of scripts/gpu_check.py, one function each, at GPU or dry-run sizes.

A section is called as ``section(ctx, record)``: it appends its rows to ``record["rows"]``
as it measures them (a section stopped at its time budget keeps what it measured) and may
add other keys; a row whose measurement failed holds an ``error`` instead of numbers.
Only public entry points are used: ``hl_lightning.losses.build_loss``,
``HierarchicalSegmenter`` (``training_step``, ``setup``, the ``compile`` option), the
shipped backbone presets and the hl-train app (``python -m hl_lightning.cli.train``).
"""

from __future__ import annotations

import contextlib
import csv
import os
import platform
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _gpu_common import (
    Context,
    Record,
    backbone_presets,
    describe,
    free_memory,
    measure_row,
    peak_mib,
    random_batch,
    ratio,
    time_interleaved,
    train_step,
    tree,
)
from _host_reads import HostReads
from _timing import median_seconds

from hl_lightning import Hierarchy
from hl_lightning.lightning import HierarchicalSegmenter
from hl_lightning.losses import build_loss

#: The loss family (build_loss names) and the options they are timed with, as in bench_loss.py.
LOSS_OPTIONS: dict[str, dict[str, float]] = {
    "hierarchical": {},
    "flat": {},
    "hxe": {"alpha": 0.5},
    "soft_labels": {"beta": 10.0},
    "tree_min": {"gamma": 2.0},
}
#: Per-level test mIoU on data=synthetic_hard varies from seed to seed with a standard
#: deviation near 0.035 (docs/results.md: 95% CI about ±0.04 over 5 seeds), so about 0.05
#: for the difference of two runs: runs further apart than twice that are not "close".
MIOU_TOLERANCE = 0.1
#: The distributions whose versions the check records.
PACKAGES = (
    "torch",
    "lightning",
    "torchmetrics",
    "hydra-core",
    "omegaconf",
    "segmentation-models-pytorch",
    "timm",
    "transformers",
    "torchvision",
)


# ---------------------------------------------------------------------------- env
def section_env(ctx: Context, record: Record) -> None:
    """Record the machine, the card, the settings and the versions the sections ran with."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = ctx.device.type == "cuda"
    record.update(
        device=torch.cuda.get_device_name(ctx.device) if cuda else "cpu",
        python=platform.python_version(),
        torch_cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if cuda else None,
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        tf32_cudnn=torch.backends.cudnn.allow_tf32,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        versions=versions,
        missing=[name for name, version in versions.items() if version is None],
        hl_lightning=str(Path(sys.modules["hl_lightning"].__file__ or "").parent),
        notes=list(ctx.sizes.notes),
    )
    if cuda:
        props = torch.cuda.get_device_properties(ctx.device)
        record.update(
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
        )
        query = "name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw"
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            smi = subprocess.run(
                ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            record["nvidia_smi"] = f"{query}: {smi.stdout.strip()}"


# ---------------------------------------------------------------------------- losses
def section_losses(ctx: Context, record: Record) -> None:
    """Time forward + backward of the loss family against F.cross_entropy, with their peak
    memory; check each loss's value and gradient on the device against the CPU's."""
    cases = ctx.sizes.loss_cases
    for i, (name, batch, side) in enumerate(cases):
        loss_case(ctx, record, name, batch, side, 0.8 * ctx.seconds_left() / (len(cases) - i))


def loss_case(
    ctx: Context, record: Record, name: str, batch: int, side: int, seconds: float
) -> None:
    """Measure one tree at one size: a row per loss, with ratios against cross-entropy."""
    device, h = ctx.device, tree(name)
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, h.num_leaves, (batch, side, side), generator=gen).to(device)
    inputs: dict[int, torch.Tensor] = {}  # one logits tensor per channel count, shared

    def logits_for(channels: int) -> torch.Tensor:
        if channels not in inputs:
            values = torch.randn(batch, channels, side, side, generator=gen)
            inputs[channels] = values.to(device).requires_grad_()
        return inputs[channels]

    def step(loss: Callable[[], torch.Tensor], logits: torch.Tensor) -> Callable[[], None]:
        def run() -> None:
            logits.grad = None
            loss().backward()

        return run

    base = logits_for(h.num_leaves)
    steps = {"cross_entropy": step(lambda: F.cross_entropy(base, target), base)}
    errors: dict[str, str] = {}
    slow = set()  # timed alone, once: a call takes over a quarter of the case's time
    for loss, options in LOSS_OPTIONS.items():
        try:
            criterion = build_loss(loss, h, None, **options).to(device)  # type: ignore[arg-type]
            logits = logits_for(getattr(criterion, "num_nodes", h.num_leaves))
            steps[loss] = step(partial(criterion, logits, target), logits)
            # a first call: an error or running out of memory shows here, not in the rounds
            if median_seconds(steps[loss], repeats=1, warmup=0) > seconds / 4:
                slow.add(loss)
        except Exception as error:
            errors[loss] = describe(error)
            steps.pop(loss, None)
            free_memory()
    rounds = {loss: fn for loss, fn in steps.items() if loss not in slow}
    times, repeats = time_interleaved(rounds, ctx, seconds)
    times.update({loss: median_seconds(steps[loss], repeats=1, warmup=0) for loss in slow})
    memory = {loss: peak_mib(fn, device) for loss, fn in steps.items()}
    common = {"tree": name, "leaves": h.num_leaves, "levels": h.num_levels, "batch": batch}
    for loss in ("cross_entropy", *LOSS_OPTIONS):
        row: Record = {**common, "side": side, "loss": loss}
        if loss in errors:
            row["error"] = errors[loss]
        else:
            row.update(
                ms=round(1e3 * times[loss], 3),
                time_vs_ce=ratio(times[loss], times["cross_entropy"]),
                peak_mib=memory[loss],
                memory_vs_ce=ratio(memory[loss], memory["cross_entropy"]),
                repeats=1 if loss in slow else repeats,
            )
            if loss != "cross_entropy":
                try:
                    row.update(device_against_cpu(loss, h, inputs, target))
                except Exception as error:
                    row["check_error"] = describe(error)
        record["rows"].append(row)
    steps.clear()
    inputs.clear()
    free_memory()


def device_against_cpu(
    loss: str, h: Hierarchy, inputs: Mapping[int, torch.Tensor], target: torch.Tensor
) -> Record:
    """Return the relative difference of a loss's value and gradient on the device from the
    same loss on the CPU (fp32 both), on the first image's top-left 64x64 crop."""
    criterion = build_loss(loss, h, None, **LOSS_OPTIONS[loss])  # type: ignore[arg-type]
    logits = inputs[getattr(criterion, "num_nodes", h.num_leaves)]
    crop, crop_target = logits.detach()[:1, :, :64, :64], target[:1, :64, :64]
    results = []
    for device in (logits.device, torch.device("cpu")):
        x = crop.to(device).clone().requires_grad_()
        value = criterion.to(device)(x, crop_target.to(device))
        value.backward()
        assert x.grad is not None
        results.append((value.detach().double().cpu(), x.grad.double().cpu()))
    (value, grad), (value_cpu, grad_cpu) = results
    return {
        "value_rel_err": float((value - value_cpu).abs() / value_cpu.abs().clamp_min(1e-30)),
        "grad_rel_err": float((grad - grad_cpu).norm() / grad_cpu.norm().clamp_min(1e-30)),
    }


# ---------------------------------------------------------------------------- backbones
def section_backbones(ctx: Context, record: Record) -> None:
    """Time one training step per backbone preset, flat against hierarchical, per precision."""
    h, sizes = tree("mapillary"), ctx.sizes
    batch = random_batch(h, sizes.step_batch, sizes.step_side, ctx.device)
    presets = backbone_presets(sizes.preset_overrides)
    record.update(presets=list(presets), batch=sizes.step_batch, side=sizes.step_side)
    units = len(presets) * len(sizes.precisions)
    for name, config in presets.items():
        models: dict[str, HierarchicalSegmenter] = {}
        try:
            for loss in ("flat", "hierarchical"):
                torch.manual_seed(0)  # the same initial weights for both
                models[loss] = HierarchicalSegmenter(config, h, loss=loss).to(ctx.device)
        except Exception as error:
            for precision in sizes.precisions:
                row = {"preset": name, "precision": precision, "error": describe(error)}
                record["rows"].append(row)
            units -= len(sizes.precisions)
            continue
        for precision in sizes.precisions:
            seconds = 0.8 * ctx.seconds_left() / units
            units -= 1
            measure_row(
                record,
                {"preset": name, "precision": precision},
                partial(preset_step, ctx, models, batch, precision, seconds),
            )
        models.clear()
        free_memory()


def preset_step(
    ctx: Context,
    models: Mapping[str, HierarchicalSegmenter],
    batch: tuple[torch.Tensor, torch.Tensor],
    precision: str,
    seconds: float,
) -> Record:
    """Return the step times and peak memory of the flat and the hierarchical model."""
    steps = {loss: train_step(m, batch, precision, ctx.device) for loss, m in models.items()}
    times, repeats = time_interleaved(steps, ctx, seconds)
    memory = {loss: peak_mib(fn, ctx.device) for loss, fn in steps.items()}
    return {
        "flat_ms": round(1e3 * times["flat"], 2),
        "hierarchical_ms": round(1e3 * times["hierarchical"], 2),
        "time_ratio": ratio(times["hierarchical"], times["flat"]),
        "flat_mib": memory["flat"],
        "hierarchical_mib": memory["hierarchical"],
        "memory_ratio": ratio(memory["hierarchical"], memory["flat"]),
        "repeats": repeats,
    }


# ---------------------------------------------------------------------------- non-finite check
@contextlib.contextmanager
def scalar_isfinite_skipped(calls: list[int]) -> Iterator[None]:
    """Within the block, ``torch.isfinite`` of a 0-dim tensor answers Python's ``True``
    without looking (so without a host sync, or a read of a tensor that
    ``_host_reads.HostReads`` would count), counting those calls in ``calls[0]``. For
    timing a step without the module's non-finite-loss check.

    Example:
        >>> calls = [0]
        >>> with scalar_isfinite_skipped(calls):
        ...     bool(torch.isfinite(torch.tensor(float("nan")))), torch.isfinite(torch.ones(2))
        (True, tensor([True, True]))
        >>> calls, bool(torch.isfinite(torch.tensor(float("nan"))))
        ([1], False)
    """
    original = torch.isfinite

    def isfinite(value: torch.Tensor) -> torch.Tensor | bool:
        if value.dim() == 0:
            calls[0] += 1
            return True
        return original(value)

    torch.isfinite = isfinite  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.isfinite = original


def host_syncs(step: Callable[[], Any], device: torch.device) -> Record:
    """Return how many times one call of ``step`` waits for the GPU, and where (file:line,
    most frequent first), from ``torch.cuda.set_sync_debug_mode``'s warnings. Off CUDA
    (the dry run): the host reads of tensor values that the package makes (each a sync on
    a GPU), per ``file:function``, counted by ``_host_reads.HostReads``."""
    if device.type != "cuda":
        with HostReads() as reads:
            step()
        sites = Counter(reads.in_package())
        how = "host reads in hl_lightning, counted on the CPU"
        return {"count": sum(sites.values()), "sites": dict(sites.most_common(10)), "how": how}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    sites = Counter(
        f"{Path(w.filename).parent.name}/{Path(w.filename).name}:{w.lineno}"
        for w in caught
        if "synchroniz" in str(w.message)
    )
    how = "syncs (torch.cuda.set_sync_debug_mode)"
    return {"count": sum(sites.values()), "sites": dict(sites.most_common(10)), "how": how}


def section_nonfinite(ctx: Context, record: Record) -> None:
    """Time a training step with the module's non-finite-loss check and without it (its
    scalar ``torch.isfinite`` answered without looking); count the step's host syncs."""
    config = backbone_presets(ctx.sizes.preset_overrides)["unet"]
    sizes = ctx.sizes
    cases = [(c, p) for c in sizes.nonfinite_cases for p in sizes.nonfinite_precisions]
    for i, ((name, batch, side), precision) in enumerate(cases):
        seconds = 0.8 * ctx.seconds_left() / (len(cases) - i)
        row: Record = {"tree": name, "batch": batch, "side": side, "precision": precision}
        measure = partial(check_cost, ctx, config, name, (batch, side), precision, seconds)
        measure_row(record, row, measure)


def check_cost(
    ctx: Context,
    config: Mapping[str, Any],
    tree_name: str,
    size: tuple[int, int],
    precision: str,
    seconds: float,
) -> Record:
    """Return a unet step's time with and without the check, and its host syncs, on the
    tree called ``tree_name`` (see ``_gpu_common.tree``)."""
    h = tree(tree_name)
    torch.manual_seed(0)
    model = HierarchicalSegmenter(dict(config), h).to(ctx.device)
    step = train_step(model, random_batch(h, *size, ctx.device), precision, ctx.device)
    calls = [0]

    def unchecked() -> None:
        with scalar_isfinite_skipped(calls):
            step()

    times, repeats = time_interleaved({"with": step, "without": unchecked}, ctx, seconds)
    calls[0] = 0
    unchecked()
    if calls[0] == 0:
        raise RuntimeError(
            "the training step calls torch.isfinite on no scalar: the module's check has "
            "changed; update scalar_isfinite_skipped in scripts/_gpu_sections.py"
        )
    return {
        "with_ms": round(1e3 * times["with"], 3),
        "without_ms": round(1e3 * times["without"], 3),
        "cost_ms": round(1e3 * (times["with"] - times["without"]), 3),
        "cost_share": ratio(times["with"] - times["without"], times["with"]),
        "scalar_checks_per_step": calls[0],
        "syncs_with": host_syncs(step, ctx.device),
        "syncs_without": host_syncs(unchecked, ctx.device),
        "repeats": repeats,
    }


# ---------------------------------------------------------------------------- compile
def section_compile(ctx: Context, record: Record) -> None:
    """Time a training step of a module built with ``compile`` (its backbone compiled at
    set-up) against eager, same weights and batch; the first compiled step gives the
    compile time, its loss the agreement with eager."""
    h, sizes, device = tree("mapillary"), ctx.sizes, ctx.device
    config = backbone_presets(sizes.preset_overrides)["unet"]
    batch = random_batch(h, sizes.step_batch, sizes.step_side, device)
    row: Record = {"preset": "unet", "batch": sizes.step_batch, "side": sizes.step_side}
    row.update(precision=sizes.compile_precision, options=sizes.compile_options)
    models = {}
    for name, options in (("eager", False), ("compiled", sizes.compile_options)):
        torch.manual_seed(0)
        models[name] = HierarchicalSegmenter(dict(config), h, compile=options).to(device)
    eager = train_step(models["eager"], batch, sizes.compile_precision, device)
    eager_loss = eager()
    start = time.perf_counter()
    models["compiled"].setup("fit")  # the set-up dry run, then backbone.compile(...)
    compiled = train_step(models["compiled"], batch, sizes.compile_precision, device)
    compiled_loss = compiled()
    if device.type == "cuda":
        torch.cuda.synchronize()
    first = time.perf_counter() - start
    row.update(
        first_step_s=round(first, 2),
        first_loss_rel_diff=float((compiled_loss - eager_loss).abs() / eager_loss.abs()),
    )
    fns = {"eager": eager, "compiled": compiled}
    times, repeats = time_interleaved(fns, ctx, 0.8 * ctx.seconds_left())
    row.update(
        eager_ms=round(1e3 * times["eager"], 2),
        compiled_ms=round(1e3 * times["compiled"], 2),
        speedup=ratio(times["eager"], times["compiled"]),
        compile_s=round(first - times["eager"], 2),
        repeats=repeats,
    )
    record["rows"].append(row)


# ---------------------------------------------------------------------------- hl-train
def section_train(ctx: Context, record: Record) -> None:
    """Run hl-train on data=synthetic_hard in the baseline precision and the mixed one at
    once; compare the final per-level test mIoU and count the non-finite steps."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
    overrides = [
        *ctx.sizes.train_overrides,
        "data=synthetic_hard",
        "logger=csv",
        "seed=0",
        "model.on_nonfinite=skip",  # count the non-finite steps rather than stop at the first
    ]
    record["command"] = " ".join(["hl-train", *overrides, "trainer.precision=<precision>"])
    runs = {}
    try:
        for precision in ctx.sizes.train_precisions:
            folder = ctx.work / f"train_{precision}"
            folder.mkdir(parents=True, exist_ok=True)
            command = [ctx.python, "-m", "hl_lightning.cli.train", *overrides]
            command += [f"trainer.precision={precision}", f"hydra.run.dir={folder}"]
            with (folder / "hl-train.log").open("w") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            runs[precision] = (process, folder, time.perf_counter())
        for precision, (process, folder, start) in runs.items():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(1.0, ctx.seconds_left() - 2))
            row: Record = {"precision": precision, "exit": process.poll()}
            row["seconds"] = round(time.perf_counter() - start, 1)
            if row["exit"] == 0:
                row.update(read_metrics(folder / "csv" / "metrics.csv"))
            else:
                what = "ran out of time" if row["exit"] is None else f"exited with {row['exit']}"
                tail = (folder / "hl-train.log").read_text()[-1500:]
                row["error"] = f"hl-train {what}: {tail}"
            record["rows"].append(row)
    finally:
        for process, *_ in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    record.update(compare_runs(record["rows"]))


def read_metrics(path: Path) -> Record:
    """Return the final per-level test mIoU and the count of skipped (non-finite) batches
    from a run's CSV log (``<run>/csv/metrics.csv``)."""
    with path.open() as file:
        rows = list(csv.DictReader(file))
    miou: dict[str, float] = {}
    skipped = 0.0
    for row in rows:
        for key, value in row.items():
            if value and key.startswith("test/miou/"):
                miou[key.removeprefix("test/miou/")] = float(value)
            elif value and key.endswith("/skipped_batches"):
                skipped += float(value)
    if not miou:
        raise RuntimeError(f"{path} holds no test/miou/<level> values")
    return {"test_miou": miou, "skipped_batches": int(skipped)}


def compare_runs(rows: list[Record]) -> Record:
    """Return the per-level mIoU differences of the second run from the first, and the
    verdicts: ``close`` (within :data:`MIOU_TOLERANCE`) and ``finite`` (no skipped batch).

    Example:
        >>> a = {"test_miou": {"kind": 0.60, "class": 0.20}, "skipped_batches": 0}
        >>> b = {"test_miou": {"kind": 0.62, "class": 0.35}, "skipped_batches": 0}
        >>> compare_runs([a, b])["close"], compare_runs([a, a])["close"], compare_runs([a])
        (False, True, {'close': None, 'finite': None})
    """
    done = [row for row in rows if "test_miou" in row]
    if len(done) < 2:
        return {"close": None, "finite": None}
    first, second = done[0]["test_miou"], done[1]["test_miou"]
    differences = {level: round(second[level] - first[level], 4) for level in first}
    return {
        "miou_difference": differences,
        "tolerance": MIOU_TOLERANCE,
        "close": max(abs(d) for d in differences.values()) <= MIOU_TOLERANCE,
        "finite": all(row["skipped_batches"] == 0 for row in done),
    }


#: The sections in the order they run: the cheap and most wanted first, compile last.
SECTIONS: dict[str, Callable[[Context, Record], None]] = {
    "env": section_env,
    "losses": section_losses,
    "train": section_train,
    "backbones": section_backbones,
    "nonfinite": section_nonfinite,
    "compile": section_compile,
}
