"""Regenerate the README figures in docs/figures/ from a sweep: compared and drawn.

By default it runs the paper's protocol on the default run (U-Net, synthetic data, 8
epochs of 512 images, same seed and data order), ``hl-train -m loss=hierarchical,flat``,
into a work folder (about 6 minutes on 2 busy CPU cores); with ``--sweep DIR`` it draws an
existing sweep instead (the README's: the evidence study of ``scripts/evidence.sh``, every
loss over five seeds). Then ``hl-compare`` on the sweep and ``hl-tree synthetic --png``, and
copies:

- ``loss_curves.png``, ``miou_curves.png``: per-level loss and mIoU, a line per loss (the
  mean over seeds, in a band from their minimum to maximum);
- ``predictions_hierarchical.png``, ``predictions_flat.png``: the last prediction grid of
  the hierarchical and the flat job (of the lowest seed; the default callbacks'
  ``predictions/epoch_XXX.png``);
- ``tree.png``: the synthetic hierarchy.

The final per-level table is printed (and left in the work folder as comparison.md).

    python scripts/make_figures.py --sweep multirun/evidence/<time>  # the README's figures
    python scripts/make_figures.py                             # a new sweep, the default budget
    python scripts/make_figures.py --epochs 4 --num-train 256  # a quicker look
    python scripts/make_figures.py trainer.precision=bf16-mixed # extra hl-train overrides
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from hl_lightning.cli import compare, tree

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run")
    parser.add_argument("--num-train", type=int, default=512, help="training images")
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "figures", help="runs")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures", help="figures")
    parser.add_argument("--sweep", type=Path, help="draw this finished sweep; run none")
    parser.add_argument("overrides", nargs="*", help="more hl-train overrides (key=value)")
    return parser.parse_args()


def run_sweep(args: argparse.Namespace) -> Path:
    """Run the paired sweep hierarchical vs flat into the work folder; return its folder."""
    sweep = args.work / "sweep"
    if sweep.exists():
        shutil.rmtree(sweep)
    command = [
        sys.executable,
        "-m",
        "hl_lightning.cli.train",
        "-m",
        "loss=hierarchical,flat",
        f"trainer.max_epochs={args.epochs}",
        f"data.num_train={args.num_train}",
        "logger=csv",
        f"hydra.sweep.dir={sweep}",
        *args.overrides,
    ]
    print("running:", " ".join(command[2:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"sweep done in {time.perf_counter() - start:.0f} s", flush=True)
    return sweep


def last_predictions(sweep: Path, loss: str) -> Path:
    """Return the last prediction grid of the lowest-seed job of ``loss`` in ``sweep``."""
    jobs = []
    for job in sweep.iterdir():
        config = job / ".hydra" / "config.yaml"
        if (job / "predictions").is_dir() and config.is_file():
            run = yaml.safe_load(config.read_text())
            if run["loss"]["name"] == loss:
                jobs.append((int(run["seed"]), job))
    if not jobs:
        raise SystemExit(f"no job of loss {loss!r} with predictions in {sweep}")
    return sorted((min(jobs)[1] / "predictions").glob("epoch_*.png"))[-1]


def main() -> None:
    """Run the sweep (or take --sweep), compare it, and copy the figures."""
    args = parse_args()
    sweep = args.sweep if args.sweep is not None else run_sweep(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if compare.main([str(sweep), "--out", str(args.work)]):
        raise SystemExit("hl-compare failed")
    for name in ("loss_curves.png", "miou_curves.png"):
        shutil.copyfile(args.work / name, args.out / name)
    for loss in ("hierarchical", "flat"):
        shutil.copyfile(last_predictions(sweep, loss), args.out / f"predictions_{loss}.png")
    tree.main(["synthetic", "--png", str(args.out / "tree.png")])
    for path in sorted(args.out.glob("*.png")):
        print(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: "
            f"{path.stat().st_size // 1024} KB"
        )


if __name__ == "__main__":
    main()
