"""Check hl_lightning on a GPU in one prepared run: results.json and results.md in OUT.

Sections, each with its own time budget (the whole run within 8 minutes on one H100), a
failure recorded with its error while the next section goes on:

- ``env``: the card, the driver, the versions;
- ``losses``: the loss family (``build_loss``) against ``F.cross_entropy``, forward +
  backward, B=8 at 512x512 on the Mapillary tree (K=66) and at 256x256 on a random depth-6
  tree (K=1000): median time of interleaved rounds, peak memory, ratios; each loss's value
  and gradient on the device against the CPU's;
- ``train``: ``hl-train trainer=gpu data=synthetic_hard`` in 16-mixed and in fp32 at once:
  final per-level test mIoU close, no non-finite step;
- ``backbones``: one training step per backbone preset (weights off), flat against
  hierarchical, in 32, 16-mixed and bf16-mixed;
- ``nonfinite``: the module's non-finite-loss check per step (with and without), and the
  step's host syncs;
- ``compile``: ``model.compile=true`` against eager: step time and compile time.

Run it through scripts/gpu_check.sh (it sets the import path)::

    bash scripts/gpu_check.sh OUT              # on a CUDA machine
    bash scripts/gpu_check.sh --dry-run OUT    # every section at tiny sizes on the CPU
    bash scripts/gpu_check.sh --prepare        # copy what a bare GPU image lacks to .gpu_site/
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[1]
#: Pure-Python distributions hl_lightning needs that a bare image with PyTorch, Lightning,
#: torchmetrics, timm, transformers and torchvision lacks (--prepare copies them).
CARRIED = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "segmentation-models-pytorch")
SITE = REPO / ".gpu_site"
Section = Callable[[Any, dict[str, Any]], None]


class SectionTimeout(BaseException):
    """A section ran past its time budget (a BaseException: rows' own handlers let it by)."""


def prepare(site: Path = SITE) -> list[str]:
    """Copy the :data:`CARRIED` distributions of this interpreter into ``site``; return them.

    For a bare GPU image: carry the folder with the run (scripts/gpu_check.sh puts it on
    the import path). Only pure-Python files are copied, without byte code.
    """
    if site.exists():
        shutil.rmtree(site)
    copied = []
    for name in CARRIED:
        dist = metadata.distribution(name)
        for file in dist.files or ():
            source = Path(str(dist.locate_file(file)))
            if ".." in file.parts or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            if site in source.parents:
                raise RuntimeError(f"{name} is imported from {site} itself: run without it")
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        copied.append(f"{name} {dist.version}")
    return copied


def run_sections(
    sections: Mapping[str, Section],
    budgets: Mapping[str, float],
    context: Any,
    results: dict[str, Any],
    save: Callable[[dict[str, Any]], None],
    max_seconds: float,
) -> None:
    """Run each section not yet in ``results["sections"]`` within its budget, saving after each.

    A section that raises is recorded with ``status`` ``error`` and its error; one past its
    budget (or the run's ``max_seconds``, counted from ``results["started"]``) is stopped
    with ``status`` ``timeout``, keeping its rows; the next section runs either way.
    """
    done = results.setdefault("sections", {})
    for name, section in sections.items():
        if name in done:
            continue
        left = max_seconds - (time.time() - results["started"])
        budget = min(budgets[name], left)
        record: dict[str, Any] = {"status": "running", "budget_s": round(budget, 1), "rows": []}
        done[name] = record
        if budget < 1:
            record.update(status="skipped", error="no time left in the run's budget")
            save(results)
            continue
        save(results)  # a crash inside the section leaves it "running": --resume notes it
        print(f"[gpu_check] {name}: up to {budget:.0f} s", flush=True)
        start = time.perf_counter()
        context.deadline = start + budget
        previous = signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, budget)
        try:
            section(context, record)
            record["status"] = "ok"
        except SectionTimeout:
            record["status"] = "timeout"
            record["error"] = f"stopped at its budget of {budget:.0f} s; the rows so far are kept"
        except Exception as error:
            record["status"] = "error"
            record["error"] = f"{type(error).__name__}: {error}"[:2000]
            record["traceback"] = traceback.format_exc(limit=-6)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        record["seconds"] = round(time.perf_counter() - start, 1)
        print(f"[gpu_check] {name}: {record['status']} in {record['seconds']} s", flush=True)
        save(results)


def _raise_timeout(signum: int, frame: Any) -> None:
    raise SectionTimeout


class Tee:
    """A text stream writing to a stream and to a log file (the run's gpu_check.log)."""

    def __init__(self, stream: TextIO, log: TextIO) -> None:
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.log.write(text)
        self.log.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def mark_crashed(results: dict[str, Any], status: int | None) -> None:
    """Mark the sections a crashed run left ``running`` as ``crashed``.

    Example:
        >>> results = {"sections": {"a": {"status": "ok"}, "b": {"status": "running"}}}
        >>> mark_crashed(results, -11)
        >>> results["sections"]["b"]["status"], results["sections"]["b"]["error"]
        ('crashed', 'the process died in this section (exit status -11)')
    """
    for record in results.get("sections", {}).values():
        if record.get("status") == "running":
            record["status"] = "crashed"
            record["error"] = f"the process died in this section (exit status {status})"


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", help="folder for results.json, results.md")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--prepare", action="store_true", help=f"fill {SITE.name}/ and stop")
    parser.add_argument("--sections", nargs="+", default=[], help="only these (env always runs)")
    parser.add_argument("--max-seconds", type=float, help="the whole run's budget")
    parser.add_argument("--resume", action="store_true", help="run the sections missing in OUT")
    parser.add_argument("--crashed-status", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare:
        for line in prepare():
            print(f"copied {line} to {SITE}")
        return 0
    if args.out is None:
        parser.error("give the results folder OUT")
    try:
        import torch
        from _gpu_sections import SECTIONS
    except ModuleNotFoundError as error:
        print(
            f"gpu_check: {error.name} is not importable by {sys.executable}: install the project "
            "there, or run `bash scripts/gpu_check.sh --prepare` where it is installed and "
            f"bring {SITE.name}/ along",
            file=sys.stderr,
        )
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device: run with --dry-run for the CPU")
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    path = args.out / "results.json"
    if args.resume and not path.exists():
        print(f"gpu_check: nothing to resume: {path} does not exist", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "gpu_check.log").open("a" if args.resume else "w") as log:
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(sys.stdout, log), Tee(sys.stderr, log)
        try:
            wanted = {"env", *args.sections} if args.sections else set(SECTIONS)
            check(args, {name: s for name, s in SECTIONS.items() if name in wanted})
        finally:
            sys.stdout, sys.stderr = streams
    return 0


def check(args: argparse.Namespace, sections: Mapping[str, Section]) -> None:
    """Run ``sections`` as ``args`` say, writing OUT/results.json and OUT/results.md."""
    import torch
    from _gpu_common import DRY, GPU, Context
    from _gpu_report import report

    warnings.filterwarnings("ignore", ".*self.log.*")  # no Trainer in the timed steps
    sizes = DRY if args.dry_run else GPU
    path = args.out / "results.json"
    results: dict[str, Any] = {}
    if args.resume:
        results = json.loads(path.read_text())
        mark_crashed(results, args.crashed_status)
    results.setdefault("started", time.time())
    results.setdefault("date", datetime.date.today().isoformat())
    results["mode"] = "dry run" if args.dry_run else "gpu"

    def save(current: dict[str, Any]) -> None:
        temporary = path.with_suffix(".json.part")
        temporary.write_text(json.dumps(current, indent=1, default=str))
        temporary.replace(path)
        try:
            text = report(current)
        except Exception as error:  # the numbers are in results.json whatever happens here
            text = f"The report failed ({type(error).__name__}: {error}); see results.json.\n"
        (args.out / "results.md").write_text(text)

    device = torch.device("cpu" if args.dry_run else "cuda")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        context = Context(device=device, sizes=sizes, work=Path(work), python=sys.executable)
        max_seconds = args.max_seconds or sizes.max_seconds
        run_sections(sections, sizes.budgets, context, results, save, max_seconds)
    results["seconds"] = round(time.time() - results["started"], 1)
    save(results)
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    sys.exit(main())
