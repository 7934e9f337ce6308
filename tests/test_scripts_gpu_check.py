"""Tests for scripts/gpu_check.sh and scripts/gpu_check.py (the GPU check, run as a CPU dry run
here): its runner (failures and time budgets recorded per section, resume after a crash),
its report, the copy of the packages a bare GPU image lacks, and the dry run of every section."""

from __future__ import annotations

import doctest
import json
import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
sys.path.insert(0, str(SCRIPTS))
import _gpu_common  # noqa: E402
import _gpu_report  # noqa: E402
import _gpu_sections  # noqa: E402
import gpu_check  # noqa: E402

LOSS_ROW = {"tree": "mapillary", "leaves": 66, "levels": 3, "batch": 8, "side": 512}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Ctx:
    deadline = float("inf")


def run(sections: dict[str, Any], budgets: dict[str, float], results: dict[str, Any], **kw):
    saved: list[str] = []
    max_seconds = kw.pop("max_seconds", 60.0)
    results.setdefault("started", time.time())
    save = lambda r: saved.append(json.dumps(r))  # noqa: E731
    gpu_check.run_sections(sections, budgets, Ctx(), results, save, max_seconds)
    return saved


@pytest.mark.parametrize("module", [gpu_check, _gpu_common, _gpu_report, _gpu_sections])
def test_the_examples_in_the_gpu_check_docstrings_hold(module) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def test_a_failing_section_is_recorded_and_the_next_still_runs() -> None:
    def broken(ctx, record):
        record["rows"].append({"measured": 1})
        raise ValueError("no such preset 'x'")

    def fine(ctx, record):
        record["rows"].append({"measured": 2})

    results: dict[str, Any] = {}
    saved = run({"a": broken, "b": fine}, {"a": 10, "b": 10}, results)
    a, b = results["sections"]["a"], results["sections"]["b"]
    assert a["status"] == "error" and a["error"] == "ValueError: no such preset 'x'"
    assert "broken" in a["traceback"] and a["rows"] == [{"measured": 1}]
    assert b["status"] == "ok" and b["rows"] == [{"measured": 2}]
    # saved before each section (a crash leaves it "running") and after it
    assert [json.loads(s)["sections"]["a"]["status"] for s in saved[:2]] == ["running", "error"]


def test_a_section_past_its_budget_is_stopped_keeping_its_rows() -> None:
    def slow(ctx, record):
        for i in range(100):
            record["rows"].append({"i": i})
            time.sleep(0.05)

    results: dict[str, Any] = {}
    start = time.perf_counter()
    run({"slow": slow, "next": lambda ctx, record: None}, {"slow": 1.2, "next": 5}, results)
    assert time.perf_counter() - start < 4
    slow_record = results["sections"]["slow"]
    assert slow_record["status"] == "timeout" and "budget of 1 s" in slow_record["error"]
    assert 5 <= len(slow_record["rows"]) < 100
    assert results["sections"]["next"]["status"] == "ok"


def test_sections_past_the_runs_budget_are_skipped() -> None:
    results: dict[str, Any] = {"started": time.time() - 100}
    run({"a": lambda ctx, record: None}, {"a": 10}, results, max_seconds=100.5)
    assert results["sections"]["a"]["status"] == "skipped"


def test_resume_marks_the_crashed_section_and_runs_only_the_missing_ones() -> None:
    ran = []
    sections = {name: lambda ctx, record, n=name: ran.append(n) for name in "abc"}
    results: dict[str, Any] = {"sections": {"a": {"status": "ok"}, "b": {"status": "running"}}}
    gpu_check.mark_crashed(results, -11)
    run(sections, dict.fromkeys("abc", 10), results)
    assert ran == ["c"]
    assert results["sections"]["b"]["status"] == "crashed"
    assert "exit status -11" in results["sections"]["b"]["error"]


def test_the_report_lists_failed_rows_and_sections() -> None:
    results = {
        "mode": "gpu",
        "sections": {
            "env": {"status": "ok", "device": "NVIDIA H100 80GB HBM3", "versions": {}},
            "losses": {
                "status": "ok",
                "rows": [
                    {**LOSS_ROW, "loss": "cross_entropy", "ms": 2.0, "time_vs_ce": 1.0},
                    {
                        **LOSS_ROW,
                        "loss": "tree_min",
                        "ms": 5.0,
                        "time_vs_ce": 2.5,
                        "repeats": 1,
                        "check_error": "RuntimeError: CPU out of memory",
                    },
                ],
            },
            "backbones": {
                "status": "timeout",
                "error": "stopped at its budget of 140 s",
                "batch": 8,
                "side": 512,
                "rows": [
                    {"preset": "hf", "precision": "32", "flat_ms": 12.0, "hierarchical_ms": 13.0},
                    {"preset": "smp", "precision": "32", "error": "OutOfMemoryError: CUDA"},
                ],
            },
        },
    }
    text = _gpu_report.report(results)
    assert text.startswith("On NVIDIA H100 80GB HBM3")
    assert "*Section timeout: stopped at its budget of 140 s*" in text
    assert "| hf | 32 | 12.0 | 13.0 |" in text
    assert "- smp 32: OutOfMemoryError: CUDA" in text
    assert "dry run" not in text
    assert "| mapillary (K=66, D=3), B=8, 512² | `cross_entropy` | 2.00 | 1.00 |" in text
    assert "\n|  | `tree_min` | 5.00 | 2.50 |  |  |  | 1 |" in text  # the case once
    assert "- mapillary tree_min, check against the CPU: RuntimeError: CPU out of" in text


def test_prepare_copies_the_pure_python_packages_a_bare_gpu_image_lacks(tmp_path: Path) -> None:
    site = tmp_path / "site"
    copied = gpu_check.prepare(site)
    assert len(copied) == len(gpu_check.CARRIED)
    found = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions(path=[site])}
    assert found == {canonical(name): metadata.version(name) for name in gpu_check.CARRIED}
    for package in ("hydra", "omegaconf", "antlr4", "segmentation_models_pytorch"):
        assert (site / package / "__init__.py").is_file()
    assert not list(site.rglob("*.pyc")) and not list(site.rglob("*.so"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_gpu_run_without_cuda_asks_for_the_dry_run(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        gpu_check.main([str(tmp_path)])
    assert stop.value.code == 2 and "--dry-run" in capsys.readouterr().err


@pytest.mark.slow
def test_dry_run_runs_every_section_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_check.sh"), "--dry-run", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    sections = results["sections"]
    assert list(sections) == list(_gpu_sections.SECTIONS)
    assert {n: s["status"] for n, s in sections.items()} == dict.fromkeys(sections, "ok")
    for section in sections.values():
        assert not [row for row in section["rows"] if "error" in row or "check_error" in row]

    losses = sections["losses"]["rows"]
    assert {(r["tree"], r["loss"]) for r in losses} == {
        (tree, loss)
        for tree in ("mapillary", "random1000")
        for loss in ("cross_entropy", *_gpu_sections.LOSS_OPTIONS)
    }
    assert all(r["ms"] > 0 and r["time_vs_ce"] > 0 for r in losses)
    assert all(r["grad_rel_err"] == 0 for r in losses if r["loss"] != "cross_entropy")  # CPU

    train = sections["train"]
    assert [(r["precision"], r["exit"]) for r in train["rows"]] == [("32", 0), ("16-mixed", 0)]
    assert set(train["rows"][0]["test_miou"]) == {"kind", "family", "class"}
    assert train["close"] is not None and train["finite"] is True

    presets = {p.stem for p in (REPO / "hl_lightning/conf/backbone").glob("*.yaml")} - {"custom"}
    steps = sections["backbones"]["rows"]
    assert {(r["preset"], r["precision"]) for r in steps} == {
        (p, precision) for p in presets for precision in _gpu_common.DRY.precisions
    }
    assert all(r["flat_ms"] > 0 and r["hierarchical_ms"] > 0 for r in steps)

    checks = sections["nonfinite"]["rows"]
    assert [r["precision"] for r in checks] == ["32", "16-mixed"]
    assert all(r["scalar_checks_per_step"] >= 1 and r["without_ms"] > 0 for r in checks)
    for r in checks:  # the package's host reads of a step (syncs on a GPU), counted on the CPU
        reads, unchecked = r["syncs_with"], r["syncs_without"]
        assert reads["how"] == "host reads in hl_lightning, counted on the CPU"
        assert reads["sites"]["hl_lightning/lightning/module.py:_shared_step"] == 1  # the check
        assert reads["sites"]["hl_lightning/label_ids.py:label_extremes"] == 1  # a new target
        assert unchecked["count"] == reads["count"] - 1
    (compiled,) = sections["compile"]["rows"]
    assert compiled["compiled_ms"] > 0 and compiled["first_loss_rel_diff"] < 1e-5

    text = (out / "results.md").read_text()
    assert "dry run" in text and "Section" not in text
    for title, _ in _gpu_report.RENDERERS.values():
        assert f"### {title}" in text
    assert text in (out / "gpu_check.log").read_text()
