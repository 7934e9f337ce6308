"""What the sections of scripts/gpu_check.py share: the sizes of each mode, the context,
the trees and backbone presets, timing within a budget, one training step in a precision."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml
from _timing import median_seconds, median_seconds_each, peak_memory_bytes
from lightning.pytorch.plugins.precision import MixedPrecision

from hl_lightning import Hierarchy
from hl_lightning.hierarchies import builtin_hierarchy, mapillary_paper_hierarchy
from hl_lightning.hierarchies.random import random_hierarchy
from hl_lightning.lightning import HierarchicalSegmenter

Record = dict[str, Any]
MIB = 2**20
FEWEST = 3  # timed rounds, at least, where a mode asks for more


@dataclass(frozen=True)
class Sizes:
    """The sizes, repeats and time budgets of one mode (the GPU run or the CPU dry run)."""

    loss_cases: tuple[tuple[str, int, int], ...]  # (tree, batch, side) of the loss family
    step_batch: int  # backbones and compile: B random images of side x side, Mapillary tree
    step_side: int
    precisions: tuple[str, ...]  # of the backbones' steps
    nonfinite_cases: tuple[tuple[str, int, int], ...]  # (tree, batch, side), the unet preset
    nonfinite_precisions: tuple[str, ...]
    compile_precision: str
    compile_options: bool | dict[str, Any]  # the module's compile argument
    train_precisions: tuple[str, str]  # hl-train: the baseline, then the mixed run
    train_overrides: tuple[str, ...]
    repeats: int  # timed rounds at most (fewer where the section's budget says so)
    warmup: int  # untimed calls before the rounds
    budgets: dict[str, float]  # seconds, per section
    max_seconds: float  # the whole run
    preset_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what this mode does differently, for the report


GPU = Sizes(
    loss_cases=(("mapillary", 8, 512), ("random1000", 8, 256)),
    step_batch=8,
    step_side=512,
    precisions=("32", "16-mixed", "bf16-mixed"),
    nonfinite_cases=(("synthetic_hard", 16, 64), ("mapillary", 8, 512)),
    nonfinite_precisions=("32", "16-mixed"),
    compile_precision="16-mixed",
    compile_options=True,
    train_precisions=("32", "16-mixed"),
    train_overrides=("trainer=gpu",),
    repeats=15,
    warmup=3,
    budgets={
        "env": 20,
        "losses": 75,
        "train": 110,
        "backbones": 140,
        "nonfinite": 40,
        "compile": 90,
    },
    max_seconds=450,
)

DRY = Sizes(
    loss_cases=(("mapillary", 2, 16), ("random1000", 1, 8)),
    step_batch=2,
    step_side=32,
    precisions=("32", "bf16-mixed"),
    nonfinite_cases=(("synthetic_hard", 2, 32),),
    nonfinite_precisions=("32", "16-mixed"),
    compile_precision="32",
    compile_options={"backend": "eager"},
    train_precisions=("32", "16-mixed"),
    train_overrides=(
        "trainer=cpu",
        "experiment=quick",
        "data.num_train=16",
        "data.num_val=8",
        "data.num_test=8",
        "data.image_size=32",
        "backbone.width=4",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "callbacks.level_predictions=null",
    ),
    repeats=1,
    warmup=1,
    budgets={  # a guard against a hang: the dry run takes seconds per section when idle
        "env": 60,
        "losses": 180,
        "train": 300,
        "backbones": 300,
        "nonfinite": 180,
        "compile": 180,
    },
    max_seconds=1200,
    preset_overrides={"unet": {"width": 4, "depth": 2}, "unet_paper": {"width": 4}},
    notes=(
        "peak memory: measured on CUDA only",
        "backbones: 16-mixed left out on the CPU, where fp16 convolutions are slow (the "
        "non-finite section and hl-train run it)",
        "compile: backend 'eager' (dynamo's tracing, no inductor build)",
    ),
)


@dataclass
class Context:
    """What every section needs: the device, the sizes, a scratch folder, the time left."""

    device: torch.device
    sizes: Sizes
    work: Path  # scratch space (hl-train's run folders), not the results folder
    python: str  # the interpreter of the hl-train runs
    deadline: float = float("inf")  # time.perf_counter() at which the running section ends

    def seconds_left(self) -> float:
        """Return the seconds left to the running section."""
        return max(0.0, self.deadline - time.perf_counter())


def tree(name: str) -> Hierarchy:
    """Return a check's tree: ``mapillary`` (the paper's, K=66), ``random1000`` (a random
    depth-6 tree, as scripts/bench_loss.py builds it) or a shipped tree's name.

    Example:
        >>> [tree(n).num_leaves for n in ("mapillary", "random1000", "synthetic_hard")]
        [66, 1000, 17]
    """
    if name == "mapillary":
        return mapillary_paper_hierarchy()
    if name == "random1000":
        return random_hierarchy(1000, 6, seed=0)
    return builtin_hierarchy(name)


def backbone_presets(overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return every shipped backbone preset (``conf/backbone/*.yaml``) that names its
    ``_target_``, by name, with ``overrides[name]`` applied.

    Example:
        >>> presets = backbone_presets({"unet": {"width": 4}})
        >>> "custom" in presets, presets["unet"]["width"], presets["unet"]["num_classes"]
        (False, 4, None)
    """
    folder = resources.files("hl_lightning.conf").joinpath("backbone")
    presets = {}
    for file in sorted(folder.iterdir(), key=lambda f: f.name):
        config = yaml.safe_load(file.read_text()) if file.name.endswith(".yaml") else None
        if isinstance(config, dict) and config.get("_target_") not in (None, "???"):
            name = file.name.removesuffix(".yaml")
            presets[name] = {**config, **overrides.get(name, {})}
    return presets


def free_memory() -> None:
    """Collect garbage and hand the CUDA caching allocator's free blocks back."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def describe(error: BaseException) -> str:
    """Return an error as one line: its type and its (shortened) message.

    Example:
        >>> describe(ValueError("bad\\n  value"))
        'ValueError: bad value'
    """
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:400]}"


def plan_repeats(round_seconds: float, seconds: float, most: int, fewest: int = FEWEST) -> int:
    """Return how many rounds of ``round_seconds`` fit in ``seconds``, within
    [min(fewest, most), most].

    Example:
        >>> plan_repeats(0.5, 10.0, 15), plan_repeats(0.5, 100.0, 15), plan_repeats(9.0, 1.0, 15)
        (15, 15, 3)
        >>> plan_repeats(0.5, 5.0, 15), plan_repeats(1.0, 1.0, 1)
        (10, 1)
    """
    fit = int(seconds / round_seconds) if round_seconds > 0 else most
    return max(min(fewest, most), min(most, fit))


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]], ctx: Context, seconds: float
) -> tuple[dict[str, float], int]:
    """Return each function's median seconds over interleaved rounds, and the rounds timed.

    One call of each first (compilation, autotuning, lazy set-up), then, where more than
    the fewest rounds are asked for, one timed call of each to plan as many rounds (up to
    ``sizes.repeats``) as fit in ``seconds``.
    """
    for fn in fns.values():
        fn()
    repeats = ctx.sizes.repeats
    if repeats > FEWEST:
        round_seconds = sum(median_seconds(fn, repeats=1, warmup=0) for fn in fns.values())
        repeats = plan_repeats(round_seconds, seconds, repeats)
    warmup = max(0, ctx.sizes.warmup - 2)
    return median_seconds_each(fns, repeats=repeats, warmup=warmup), repeats


def peak_mib(fn: Callable[[], Any], device: torch.device) -> float | None:
    """Return the peak CUDA memory of one call in MiB (above what was live); None off CUDA,
    where an in-process measurement is not reliable (scripts/_timing.py)."""
    if device.type != "cuda":
        return None
    return round(peak_memory_bytes(fn, device) / MIB, 1)


def ratio(value: float | None, base: float | None) -> float | None:
    """Return value / base rounded, None where either is missing or the base is not positive.

    Example:
        >>> ratio(3.0, 2.0), ratio(None, 2.0), ratio(1.0, 0.0)
        (1.5, None, None)
    """
    if value is None or base is None or base <= 0:
        return None
    return round(value / base, 3)


def train_step(
    model: HierarchicalSegmenter,
    batch: tuple[torch.Tensor, torch.Tensor],
    precision: str,
    device: torch.device,
) -> Callable[[], torch.Tensor]:
    """Return a function running one optimisation step of ``model`` on ``batch`` in
    ``precision`` (``32``, ``16-mixed`` or ``bf16-mixed``) that returns the loss.

    Mixed precision as Lightning's ``MixedPrecision`` plugin runs it: ``training_step``
    in its autocast context; backward and the AdamW step outside, through its gradient
    scaler for ``16-mixed``. Each step gets a copy of the target, a new tensor as from a
    data loader: the module reads a target's label ids once (``hl_lightning.label_ids``),
    so a step on the same tensor again would skip that read (a sync on a GPU).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    plugin = None if precision == "32" else MixedPrecision(precision, device.type)  # type: ignore[arg-type]
    scaler = None if plugin is None else plugin.scaler
    model.train()

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        images, target = batch
        with contextlib.nullcontext() if plugin is None else plugin.forward_context():
            loss = model.training_step((images, target.clone()), 0)
        if loss is None:
            raise RuntimeError("the training step skipped its batch: a non-finite loss")
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return loss.detach()

    return step


def random_batch(
    h: Hierarchy, batch: int, side: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return fixed random images (B, 3, side, side) and leaf targets (B, side, side).

    Example:
        >>> images, target = random_batch(tree("synthetic_hard"), 2, 8, torch.device("cpu"))
        >>> tuple(images.shape), tuple(target.shape), int(target.max()) < 17
        ((2, 3, 8, 8), (2, 8, 8), True)
    """
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, side, side, generator=gen)
    target = torch.randint(0, h.num_leaves, (batch, side, side), generator=gen)
    return images.to(device), target.to(device)


def measure_row(record: Record, row: Record, measure: Callable[[], Record]) -> None:
    """Append ``row`` to ``record["rows"]`` with ``measure()``'s values, or with its error."""
    try:
        row.update(measure())
    except Exception as error:  # recorded; the section goes on with its next row
        row["error"] = describe(error)
    record["rows"].append(row)
    free_memory()
