"""Write the tables of docs/results.md's decisions section from an evaluated evidence sweep.

The sweep holds the evidence study's ``loss=flat`` and ``loss=hierarchical`` runs over
paired seeds (``hl-train -m experiment=evidence loss=hierarchical,flat``); each run's best
checkpoint has been evaluated by ``hl-eval`` into ``<run>/eval/`` (``results.json``,
``hpr_curve.csv``; ``scripts/decision_evidence.sh`` does both). Other runs of the sweep are
left alone. Writes, each whole (:func:`hl_lightning.atomic.atomic_write`):

- ``SWEEP/decisions.md`` (also printed): over the seeds both losses ran, the mean ± 95%
  Student-t CI of flat + marginal, flat + crm, hierarchical + marginal and hierarchical +
  crm (mIoU at every level, mistake severity, serious share); the paired differences
  (per seed, then mean ± CI and the two-sided paired t-test's p) of the comparisons in
  :data:`COMPARISONS`; the operating curves' areas of flat and hierarchical (node
  predictions, after hl-eval's temperature) with their paired difference, and the
  temperatures;
- ``SWEEP/decisions.csv``: one row per run and decoding, every value above;
- the figure of both mean operating curves (``--figure``, default ``SWEEP/hpr_curves.png``;
  needs matplotlib, else skipped with a note).

    python scripts/decision_table.py SWEEP [--figure docs/figures/hpr_curves.png]
    python scripts/decision_table.py SWEEP --checkpoints   # each run's best checkpoint, a line each
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hl_lightning.atomic import atomic_write
from hl_lightning.cli.compare.configurations import group_runs
from hl_lightning.cli.compare.runs import CompareError, Run, load_runs, natural_key
from hl_lightning.cli.compare.stats import Estimate, mean_ci, paired_difference
from hl_lightning.cli.compare.summary import TableRow
from hl_lightning.cli.compare.tables import markdown_table, shown_row

#: The losses compared (``loss=<name>`` overrides) and the decodings hl-eval ran, in order.
LOSSES = ("flat", "hierarchical")
DECODINGS = ("marginal", "crm")
#: A model and a decoding: ``("flat", "crm")``.
Setting = tuple[str, str]
SETTINGS: tuple[Setting, ...] = tuple((loss, decode) for loss in LOSSES for decode in DECODINGS)
#: The paired differences shown: (setting, baseline).
COMPARISONS: tuple[tuple[Setting, Setting], ...] = (
    (("flat", "crm"), ("flat", "marginal")),
    (("hierarchical", "marginal"), ("flat", "marginal")),
    (("hierarchical", "crm"), ("flat", "crm")),
    (("hierarchical", "crm"), ("flat", "marginal")),
)
EVAL = "eval"  # the folder of a run that hl-eval writes into
#: hl-train's value and hl-eval's agree within this (the same checkpoint, data and metric).
AGREEMENT = 1e-4


class DecisionError(ValueError):
    """A sweep whose runs or evaluations cannot be used: the message names the file."""


@dataclass(frozen=True)
class Evaluation:
    """One run's hl-eval results: per decoding its values (``miou/<level>``, ``severity``,
    ``serious``, ...), the operating curve's area and points (threshold, hP, hR), the
    temperature applied before the node predictions (``fitted``: on the validation split),
    and hl-train's own test value of the leaf mIoU (None where the run was not tested)."""

    loss: str
    seed: str
    path: Path
    levels: tuple[str, ...]
    values: dict[str, dict[str, float]]
    auc: float
    temperature: float
    fitted: bool
    curve: tuple[tuple[float, float, float], ...]
    trained_leaf_miou: float | None

    def value(self, decode: str, key: str) -> float:
        """Return the value ``key`` of decoding ``decode`` (``"hpr_auc"``: the curve's area)."""
        return self.auc if key == "hpr_auc" else self.values[decode][key]


def setting_name(setting: Setting, spaced: bool = True) -> str:
    """Return a setting's column title.

    >>> setting_name(("flat", "crm")), setting_name(("flat", "crm"), spaced=False)
    ('flat + crm', 'flat+crm')
    """
    return (" + " if spaced else "+").join(setting)


def comparison_name(comparison: tuple[Setting, Setting]) -> str:
    """Return a comparison's title.

    >>> comparison_name((("flat", "crm"), ("flat", "marginal")))
    'flat+crm − flat+marginal'
    """
    return " − ".join(setting_name(setting, spaced=False) for setting in comparison)


def value_keys(levels: Sequence[str]) -> list[tuple[str, str]]:
    """Return the (key, title) of the values compared: mIoU per level, coarse to fine, then
    the mistake severity and the share of serious mistakes.

    >>> value_keys(["kind", "class"])  # doctest: +NORMALIZE_WHITESPACE
    [('miou/kind', 'mIoU kind'), ('miou/class', 'mIoU class (leaf)'),
     ('severity', 'mistake severity'), ('serious', 'serious share')]
    """
    keys = [(f"miou/{level}", f"mIoU {level}") for level in levels]
    keys[-1] = (keys[-1][0], f"{keys[-1][1]} (leaf)")
    return [*keys, ("severity", "mistake severity"), ("serious", "serious share")]


def best_checkpoint(run: Path) -> Path:
    """Return the run's best checkpoint (by ``val/miou``): its one ``checkpoints/epoch*.ckpt``,
    the one hl-train tested with; a :class:`DecisionError` naming the folder otherwise.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> (run / "checkpoints").mkdir()
    >>> for name in ("epoch006.ckpt", "last.ckpt"):
    ...     _ = (run / "checkpoints" / name).write_bytes(b"")
    >>> best_checkpoint(run).name
    'epoch006.ckpt'
    """
    found = sorted((run / "checkpoints").glob("epoch*.ckpt"))
    if len(found) != 1:
        names = ", ".join(path.name for path in found) or "none"
        raise DecisionError(
            f"{run / 'checkpoints'}: one best checkpoint epochNNN.ckpt expected, found {names}"
        )
    return found[0].resolve()


def study_runs(sweep: Path) -> list[tuple[str, Run]]:
    """Return (loss, run) for each ``loss=flat`` and ``loss=hierarchical`` run of the sweep.

    The runs are grouped as hl-compare groups them (the same overrides but for the seed,
    one run per seed, configs that agree but for the seed); a :class:`DecisionError` where
    a loss has no runs or two configurations.
    """
    try:
        configurations = group_runs(load_runs([sweep]))
    except CompareError as error:
        raise DecisionError(str(error)) from None
    found: list[tuple[str, Run]] = []
    for loss in LOSSES:
        mine = [c for c in configurations if c.overrides.get("loss") == f"loss={loss}"]
        if len(mine) != 1:
            labels = ", ".join(c.label for c in mine) or "none"
            raise DecisionError(
                f"{sweep}: one configuration of loss={loss} runs expected, found {labels}"
            )
        found += [(loss, run) for run in mine[0].runs]
    return found


def _read_curve(path: Path) -> tuple[tuple[float, float, float], ...]:
    """Return the (threshold, hP, hR) rows of an ``hpr_curve.csv``."""
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    try:
        return tuple((float(r["threshold"]), float(r["hp"]), float(r["hr"])) for r in rows)
    except (KeyError, TypeError, ValueError):
        raise DecisionError(f"{path}: not an operating curve (threshold,hp,hr,hf)") from None


def read_evaluation(loss: str, run: Run) -> Evaluation:
    """Return what hl-eval wrote into ``<run>/eval/``, checked: its files are there, it
    evaluated the best checkpoint, and it holds the decodings of :data:`DECODINGS`."""
    folder = run.path / EVAL
    results, curve = folder / "results.json", folder / "hpr_curve.csv"
    for path in (results, curve):
        if not path.is_file():
            raise DecisionError(f"{path}: missing; evaluate the run first (decision_evidence.sh)")
    try:
        data = json.loads(results.read_text())
        decodings, nodes = data["decodings"], data["nodes"]
        evaluated, auc, temperature = Path(data["checkpoint"]), nodes["auc"], nodes["temperature"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DecisionError(f"{results}: not hl-eval's results ({error!r})") from None
    best = best_checkpoint(run.path)
    if evaluated.name != best.name:
        raise DecisionError(f"{results}: evaluates {evaluated.name}, not the best {best.name}")
    missing = [decode for decode in DECODINGS if decode not in decodings]
    if missing:
        raise DecisionError(f"{results}: no decoding {', '.join(missing)}; rerun hl-eval")
    levels = tuple(key[5:] for key in decodings[DECODINGS[0]] if key.startswith("miou/"))
    return Evaluation(
        loss=loss,
        seed=str(run.seed),
        path=run.path,
        levels=levels,
        values={decode: decodings[decode] for decode in DECODINGS},
        auc=float(auc),
        temperature=float(temperature),
        fitted="fit" in nodes,
        curve=_read_curve(curve),
        trained_leaf_miou=run.final(f"test/miou/{levels[-1]}"),
    )


def paired_seeds(evaluations: Sequence[Evaluation]) -> list[str]:
    """Return the seeds that every loss ran, in natural order.

    >>> runs = [Evaluation(loss, seed, Path(), (), {}, 0.0, 1.0, False, (), None)
    ...         for loss, seed in [("flat", "0"), ("flat", "1"), ("hierarchical", "1")]]
    >>> paired_seeds(runs)
    ['1']
    """
    seeds = [{e.seed for e in evaluations if e.loss == loss} for loss in LOSSES]
    return sorted(set.intersection(*seeds), key=natural_key)


class Study:
    """The evaluations of the paired seeds, looked up by (loss, seed)."""

    def __init__(self, evaluations: Sequence[Evaluation]) -> None:
        self.seeds = paired_seeds(evaluations)
        if not self.seeds:
            raise DecisionError("no seed that both losses ran: nothing to pair")
        self.runs = {(e.loss, e.seed): e for e in evaluations if e.seed in self.seeds}
        self.left_out = sorted(
            (e for e in evaluations if e.seed not in self.seeds), key=lambda e: natural_key(e.seed)
        )
        levels = {e.levels for e in self.runs.values()}
        if len(levels) != 1:
            raise DecisionError(f"the runs have different levels: {sorted(levels)}")
        self.levels = next(iter(levels))

    def values(self, setting: Setting, key: str) -> list[float]:
        """Return the value ``key`` of a setting per paired seed, in seed order."""
        loss, decode = setting
        return [self.runs[loss, seed].value(decode, key) for seed in self.seeds]


def summary_rows(study: Study) -> list[dict[str, str]]:
    """Return the mean ± 95% CI of each value (a row) per setting (a column)."""
    rows = []
    for key, title in value_keys(study.levels):
        estimates: dict[str, Estimate | None] = {
            setting_name(s): mean_ci(study.values(s, key)) for s in SETTINGS
        }
        rows.append(shown_row(TableRow({"value": title}, estimates), paired=False))
    return rows


def difference_rows(study: Study) -> list[dict[str, str]]:
    """Return the paired difference of each value (a row) per comparison (a column)."""
    rows = []
    for key, title in value_keys(study.levels):
        estimates: dict[str, Estimate | None] = {
            comparison_name((a, b)): paired_difference(study.values(a, key), study.values(b, key))
            for a, b in COMPARISONS
        }
        rows.append(shown_row(TableRow({"value": title}, estimates), paired=True))
    return rows


def _per_seed_row(
    title: str, values: Sequence[float], seeds: Sequence[str], sign: str
) -> dict[str, str]:
    """Return a row's title and its value per seed (``sign="+"``: signed)."""
    cells = {f"seed {s}": f"{v:{sign}.4f}" for s, v in zip(seeds, values, strict=True)}
    return {"value": title} | cells


def per_seed_rows(study: Study, comparison: tuple[Setting, Setting]) -> list[dict[str, str]]:
    """Return one comparison's differences per seed, then their mean ± CI and p (a row per
    value)."""
    (a, b), rows = comparison, []
    for key, title in value_keys(study.levels):
        new, old = study.values(a, key), study.values(b, key)
        row = _per_seed_row(title, [x - y for x, y in zip(new, old, strict=True)], study.seeds, "+")
        mean = TableRow({}, {"mean ± 95% CI (p)": paired_difference(new, old)})
        rows.append(row | shown_row(mean, paired=True))
    return rows


def curve_rows(study: Study) -> list[dict[str, str]]:
    """Return the operating curve's area of each loss per seed with its mean ± CI, their
    paired difference, and the temperature each run's node predictions used."""
    column, rows = "mean ± 95% CI (p)", []
    areas = {loss: study.values((loss, DECODINGS[0]), "hpr_auc") for loss in LOSSES}
    for loss in LOSSES:
        row = _per_seed_row(f"area {loss}", areas[loss], study.seeds, "")
        rows.append(row | shown_row(TableRow({}, {column: mean_ci(areas[loss])}), paired=False))
    new, old = areas[LOSSES[1]], areas[LOSSES[0]]
    row = _per_seed_row(
        f"area {LOSSES[1]} − {LOSSES[0]}",
        [x - y for x, y in zip(new, old, strict=True)],
        study.seeds,
        "+",
    )
    rows.append(row | shown_row(TableRow({}, {column: paired_difference(new, old)}), paired=True))
    for loss in LOSSES:
        temperatures = [study.runs[loss, seed].temperature for seed in study.seeds]
        row = _per_seed_row(f"temperature {loss}", temperatures, study.seeds, "")
        rows.append(row | shown_row(TableRow({}, {column: mean_ci(temperatures)}), paired=False))
    return rows


def mean_curve(evaluations: Sequence[Evaluation]) -> list[tuple[float, float, float]]:
    """Return the (threshold, mean hP, mean hR) of the runs' curves, at the thresholds where
    every run has a correct claim (hP or hR above 0: a point of its curve).

    >>> curves = [((0.5, 0.8, 0.6), (0.9, 0.0, 0.0)), ((0.5, 0.6, 0.4), (0.9, 1.0, 0.1))]
    >>> runs = [Evaluation("flat", "0", Path(), (), {}, 0.0, 1.0, False, c, None) for c in curves]
    >>> [tuple(round(v, 6) for v in point) for point in mean_curve(runs)]
    [(0.5, 0.7, 0.5)]
    """
    grids = {tuple(point[0] for point in e.curve) for e in evaluations}
    if len(grids) != 1:
        raise DecisionError("the runs' operating curves have different thresholds")
    points = []
    for i, threshold in enumerate(next(iter(grids))):
        at = [e.curve[i] for e in evaluations]
        if all(hp > 0 or hr > 0 for _, hp, hr in at):
            n = len(at)
            points.append((threshold, sum(p[1] for p in at) / n, sum(p[2] for p in at) / n))
    return points


def save_figure(study: Study, path: Path) -> str:
    """Draw the mean operating curve of each loss (:func:`mean_curve`; the legend gives the
    mean of the seeds' areas) into ``path``; return a line saying what was written, or why
    not (no matplotlib, no point to draw)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return f"No figure: {path} needs matplotlib (pip install hl_lightning[plots])."
    import torch

    from hl_lightning.metrics import OperatingCurve, plot_operating_curve

    figure, axes = plt.subplots(figsize=(5, 4))
    drawn = []
    for loss in LOSSES:
        runs = [study.runs[loss, seed] for seed in study.seeds]
        points = mean_curve(runs)
        if points:
            threshold, hp, hr = (torch.tensor(column) for column in zip(*points, strict=True))
            area = torch.tensor(mean_ci([e.auc for e in runs]).mean)
            curve = OperatingCurve(threshold, hp, hr, 2 * hp * hr / (hp + hr), area)
            plot_operating_curve(curve, axes, f"{loss}, mean of {len(runs)} seeds")
            drawn.append(loss)
    if not drawn:
        plt.close(figure)
        return f"No figure ({path}): no threshold where every seed of a loss made a correct claim."
    axes.set_title("mean operating curves (legend: the seeds' mean area)")
    with atomic_write(path, "wb") as file:
        figure.savefig(file, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    missing = [loss for loss in LOSSES if loss not in drawn]
    note = f"; {missing[0]}: no threshold where every seed made a correct claim" if missing else ""
    return f"Figure: {path} (each loss's mean curve{note})."


def temperature_text(study: Study) -> str:
    """Return what the node predictions were computed from: fitted, given or no temperature."""
    runs = study.runs.values()
    if all(e.fitted for e in runs):
        return "logits / a temperature fitted on each run's validation split (least NLL)"
    if all(e.temperature == 1.0 for e in runs):
        return "the network's own probabilities (no temperature)"
    return "logits / the temperature given to hl-eval"


def agreement_note(study: Study) -> str:
    """Return a line on whether hl-eval's marginal leaf mIoU equals hl-train's own test
    value for every run (the same checkpoint, data and decoding)."""
    pairs = [
        (e, e.values["marginal"][f"miou/{e.levels[-1]}"] - e.trained_leaf_miou)
        for e in study.runs.values()
        if e.trained_leaf_miou is not None
    ]
    differ = [e.path.name for e, gap in pairs if abs(gap) > AGREEMENT]
    largest = max((abs(gap) for _, gap in pairs), default=0.0)
    text = (
        f"Check: hl-eval's marginal leaf mIoU equals hl-train's test value (within {AGREEMENT:g})"
        f" in {len(pairs) - len(differ)} of {len(study.runs)} runs (largest difference "
        f"{largest:.2g})"
    )
    untested = [e.path.name for e in study.runs.values() if e.trained_leaf_miou is None]
    text += f"; it differs in {', '.join(differ)}" if differ else ""
    text += f"; no test value of hl-train in {', '.join(untested)}" if untested else ""
    return text + ".\n"


def report(study: Study, figure_line: str) -> str:
    """Return the Markdown of ``decisions.md``."""
    n, seeds = len(study.seeds), " ".join(study.seeds)
    text = (
        f"Seeds {seeds} ({n} paired: one seed gives both losses the same data order and "
        "initial weights); hl-eval on each run's best checkpoint (by val/miou), test split. "
        "The decodings read the network's own probabilities (hl-eval applies a temperature "
        "to the node predictions only).\n"
    )
    if study.left_out:
        names = ", ".join(f"{e.path.name}" for e in study.left_out)
        text += f"Left out (their seed has no run of the other loss): {names}.\n"
    text += f"\nMean ± 95% CI over {n} seeds:\n\n" + markdown_table(summary_rows(study))
    text += (
        "\nPaired differences, mean ± 95% CI (p: two-sided paired t-test):\n\n"
        + markdown_table(difference_rows(study))
    )
    for comparison in COMPARISONS:
        text += f"\n{comparison_name(comparison)}, per seed:\n\n"
        text += markdown_table(per_seed_rows(study, comparison))
    text += (
        f"\nOperating curves of the node predictions, from {temperature_text(study)}: their "
        "area per seed, mean ± 95% CI, and the paired difference (p):\n\n"
        + markdown_table(curve_rows(study))
    )
    return text + f"\n{figure_line}\n\n" + agreement_note(study)


def value_table(study: Study) -> str:
    """Return ``decisions.csv``: a row per run and decoding, its values, area and temperature."""
    keys = [key for key, _ in value_keys(study.levels)]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["loss", "seed", "decode", *keys, "hpr_auc", "temperature", "run"])
    for seed in study.seeds:
        for loss, decode in SETTINGS:
            e = study.runs[loss, seed]
            values = [f"{e.value(decode, key):.6g}" for key in keys]
            row = [loss, seed, decode, *values, f"{e.auc:.6g}", f"{e.temperature:.6g}"]
            writer.writerow([*row, e.path.name])
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> None:
    """Print each run's best checkpoint (``--checkpoints``), or write the tables and figure."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "sweep", type=Path, help="the sweep folder of the flat and hierarchical runs"
    )
    parser.add_argument("--figure", type=Path, help="the figure's path [SWEEP/hpr_curves.png]")
    parser.add_argument(
        "--checkpoints", action="store_true", help="print each run's best checkpoint and stop"
    )
    args = parser.parse_args(argv)
    try:
        runs = study_runs(args.sweep)
        if args.checkpoints:
            print("\n".join(str(best_checkpoint(run.path)) for _, run in runs))
            return
        study = Study([read_evaluation(loss, run) for loss, run in runs])
    except DecisionError as error:
        print(f"decision_table.py: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    figure_line = save_figure(study, args.figure or args.sweep / "hpr_curves.png")
    text = report(study, figure_line)
    with atomic_write(args.sweep / "decisions.md") as file:
        file.write(text)
    with atomic_write(args.sweep / "decisions.csv", newline="") as file:
        file.write(value_table(study))
    print(text, end="")


if __name__ == "__main__":
    main()
