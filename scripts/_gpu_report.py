"""The markdown report of scripts/gpu_check.py: a heading naming the card, a table per section.

The tables are in docs/performance.md's style, ready to paste there; a failed section
shows its error, a failed row is listed under its table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Record = Mapping[str, Any]
#: A column: its header and the format of its numbers (None: text, left-aligned).
Column = tuple[str, str | None]


def cell(value: Any, spec: str | None) -> str:
    """Return a table cell: '' for None, numbers with ``spec`` (tiny ones in e-notation).

    Example:
        >>> cell(None, ".2f"), cell(1.234, ".2f"), cell(3e-7, ".2f"), cell(0.0, ".2f")
        ('', '1.23', '3.0e-07', '0.00')
        >>> cell("x", None), cell(12, "d")
        ('x', '12')
    """
    if value is None:
        return ""
    if spec is None or not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value != 0 and abs(value) < 10 ** -int(spec[1:-1] or 0):
        return f"{value:.1e}"
    return format(value, spec)


def table(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Return a markdown table; numeric columns right-aligned.

    Example:
        >>> print("\\n".join(table([("loss", None), ("ms", ".1f")], [["flat", 2.0]])))
        | loss | ms |
        |---|---:|
        | flat | 2.0 |
    """
    lines = ["| " + " | ".join(header for header, _ in columns) + " |"]
    lines.append("|" + "|".join("---" if spec is None else "---:" for _, spec in columns) + "|")
    for row in rows:
        cells = (cell(value, spec) for value, (_, spec) in zip(row, columns, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def failed_rows(rows: Sequence[Record], name: Callable[[Record], str]) -> list[str]:
    """Return a line per failed row: what it measured and its error."""
    return [f"\n- {name(row)}: {row['error']}" for row in rows if "error" in row]


def render_losses(record: Record) -> list[str]:
    """The loss family's table: time and peak memory, ratios against cross-entropy."""
    columns: list[Column] = [("case", None), ("loss", None), ("ms", ".2f"), ("× CE", ".2f")]
    columns += [("peak MiB", ".1f"), ("× CE", ".2f"), ("grad vs CPU", ".1e"), ("rounds", "d")]
    rows, previous = [], None
    for r in record["rows"]:
        case = f"{r['tree']} (K={r['leaves']}, D={r['levels']}), B={r['batch']}, {r['side']}²"
        if "error" not in r:
            rows.append(
                [
                    "" if case == previous else case,
                    f"`{r['loss']}`",
                    r.get("ms"),
                    r.get("time_vs_ce"),
                    r.get("peak_mib"),
                    r.get("memory_vs_ce"),
                    r.get("grad_rel_err"),
                    r.get("repeats"),
                ]
            )
            previous = case
    name: Callable[[Record], str] = lambda r: f"{r['tree']} {r['loss']}"  # noqa: E731
    checks = [
        f"\n- {name(r)}, check against the CPU: {r['check_error']}"
        for r in record["rows"]
        if "check_error" in r
    ]
    return table(columns, rows) + failed_rows(record["rows"], name) + checks


def render_train(record: Record) -> list[str]:
    """The two hl-train runs: final per-level test mIoU, non-finite steps, the verdicts."""
    done = [r for r in record["rows"] if "test_miou" in r]
    levels = list(done[0]["test_miou"]) if done else []
    columns: list[Column] = [("precision", None), ("s", ".0f")]
    columns += [(f"mIoU {level}", ".4f") for level in levels] + [("non-finite steps", "d")]
    rows = [
        [r["precision"], r["seconds"], *(r["test_miou"][lv] for lv in levels), r["skipped_batches"]]
        for r in done
    ]
    lines = [f"`{record.get('command', '')}` (both runs at once)", "", *table(columns, rows)]
    if record.get("close") is not None:
        largest = max(abs(d) for d in record["miou_difference"].values())
        lines.append(
            f"\nLargest per-level mIoU difference {largest:.4f} (tolerance "
            f"{record['tolerance']}): {'close' if record['close'] else '**not close**'}; "
            f"{'no non-finite step' if record['finite'] else '**non-finite steps**'}."
        )
    return lines + failed_rows(record["rows"], lambda r: r["precision"])


def render_backbones(record: Record) -> list[str]:
    """Per preset and precision: the flat and hierarchical step, their ratio and memory."""
    columns: list[Column] = [("backbone", None), ("precision", None), ("flat ms", ".1f")]
    columns += [("hier. ms", ".1f"), ("hier./flat", ".2f"), ("flat MiB", ".0f")]
    columns += [("hier. MiB", ".0f")]
    rows = [
        [
            r["preset"],
            r["precision"],
            r.get("flat_ms"),
            r.get("hierarchical_ms"),
            r.get("time_ratio"),
            r.get("flat_mib"),
            r.get("hierarchical_mib"),
        ]
        for r in record["rows"]
        if "error" not in r
    ]
    size = f"B={record.get('batch')} at {record.get('side')}², the Mapillary tree (K=66)"
    lines = [f"One optimisation step (`training_step`, backward, AdamW), {size}:", ""]
    name: Callable[[Record], str] = lambda r: f"{r['preset']} {r['precision']}"  # noqa: E731
    return lines + table(columns, rows) + failed_rows(record["rows"], name)


def _syncs(row: Record) -> str:
    with_check, without = row.get("syncs_with"), row.get("syncs_without")
    if with_check is None or without is None:
        return "n/a"
    counted = " (CPU count)" if with_check.get("how", "").endswith("on the CPU") else ""
    return f"{with_check['count']} → {without['count']}{counted}"


def render_nonfinite(record: Record) -> list[str]:
    """The check's cost per step (with - without) and the step's host syncs."""
    columns: list[Column] = [("unet step", None), ("precision", None), ("with ms", ".2f")]
    columns += [("without ms", ".2f"), ("cost ms", ".2f"), ("cost %", ".1f")]
    columns += [("host syncs per step", None)]
    rows = [
        [
            f"{r['tree']}, B={r['batch']}, {r['side']}²",
            r["precision"],
            r.get("with_ms"),
            r.get("without_ms"),
            r.get("cost_ms"),
            None if r.get("cost_share") is None else 100 * r["cost_share"],
            _syncs(r),
        ]
        for r in record["rows"]
        if "error" not in r
    ]
    lines = table(columns, rows)
    for r in record["rows"]:
        if r.get("syncs_with"):
            sites = ", ".join(f"{k} ×{v}" for k, v in r["syncs_with"]["sites"].items())
            how = r["syncs_with"].get("how", "syncs")
            lines.append(f"\n{how.capitalize()} ({r['tree']}, {r['precision']}): {sites}")
    return lines + failed_rows(record["rows"], lambda r: f"{r['tree']} {r['precision']}")


def render_compile(record: Record) -> list[str]:
    """Eager against compiled: step times, speed-up, compile time, first-step agreement."""
    columns: list[Column] = [("step", None), ("precision", None), ("eager ms", ".1f")]
    columns += [("compiled ms", ".1f"), ("speed-up", ".2f"), ("compile s", ".1f")]
    columns += [("loss rel. diff", ".1e")]
    rows = [
        [
            f"{r['preset']}, B={r['batch']}, {r['side']}²",
            r["precision"],
            r.get("eager_ms"),
            r.get("compiled_ms"),
            r.get("speedup"),
            r.get("compile_s"),
            r.get("first_loss_rel_diff"),
        ]
        for r in record["rows"]
    ]
    return table(columns, rows)


RENDERERS: dict[str, tuple[str, Callable[[Record], list[str]]]] = {
    "losses": ("The loss family against cross-entropy (forward + backward)", render_losses),
    "train": ("hl-train: mixed precision against fp32 (data=synthetic_hard)", render_train),
    "backbones": ("A training step per backbone preset", render_backbones),
    "nonfinite": ("The non-finite-loss check per step", render_nonfinite),
    "compile": ("`model.compile=true` against eager", render_compile),
}


def report(results: Record) -> str:
    """Return the results as markdown: a line naming the card, then a table per section.

    Example:
        >>> results = {"mode": "gpu", "date": "2026-01-01", "sections": {
        ...     "env": {"device": "NVIDIA H100 80GB HBM3", "torch_cuda": "13.0",
        ...             "versions": {"torch": "2.11.0"}},
        ...     "compile": {"status": "error", "error": "RuntimeError: no compiler", "rows": []}}}
        >>> print(report(results))
        On NVIDIA H100 80GB HBM3, torch 2.11.0, CUDA 13.0, 2026-01-01.
        <BLANKLINE>
        ### `model.compile=true` against eager
        <BLANKLINE>
        *Section error: RuntimeError: no compiler*
        <BLANKLINE>
        | step | precision | eager ms | compiled ms | speed-up | compile s | loss rel. diff |
        |---|---|---:|---:|---:|---:|---:|
        <BLANKLINE>
    """
    sections = results.get("sections", {})
    env = sections.get("env", {})
    lines = [
        f"On {env.get('device', 'an unrecorded device')}, "
        f"torch {env.get('versions', {}).get('torch', '?')}, CUDA {env.get('torch_cuda')}, "
        f"{results.get('date', '?')}."
    ]
    if results.get("mode") != "gpu":
        lines.append("**A dry run at tiny sizes on the CPU: its numbers measure nothing.**")
    lines += [f"- {note}" for note in env.get("notes", [])]
    if env.get("status") not in (None, "ok"):
        lines.append(f"\n*env {env.get('status')}: {env.get('error', '')}*")
    for name, (title, render) in RENDERERS.items():
        record = sections.get(name)
        if record is None:
            continue
        lines += ["", f"### {title}", ""]
        if record.get("status") != "ok":
            lines += [f"*Section {record.get('status')}: {record.get('error', '')}*", ""]
        lines += render(record)
    return "\n".join(lines) + "\n"
