"""Write the table of the coarse-label evidence study from its sweep (experiment=coarse_evidence).

Reads every run of the sweep (as hl-compare does) and writes ``SWEEP/coarse_evidence.md``,
also printed: per loss and level, the test mIoU of the three arms (mean ± 95% CI over
seeds), the paired differences (b) - (a) and (c) - (a) with their CI and p-value (paired
t-test), and the share of the gap to (c) that the coarse images close,
mean(b - a) / mean(c - a), with Fieller's 95% interval for that ratio of paired means.

The arms: (a) ``study.arm=fine`` (N fine images), (b) ``coarse`` (the same and M more
labelled coarsely), (c) ``all_fine`` (all N + M fine); pairs are runs of one seed.

    python scripts/coarse_evidence_table.py multirun/coarse_evidence/<time>
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from hl_lightning.cli.compare import group_runs, load_runs
from hl_lightning.cli.compare.runs import override_value
from hl_lightning.cli.compare.stats import Estimate, mean_ci, paired_difference, t_quantile
from hl_lightning.cli.compare.summary import Values

#: The arms, in table order, and their column titles.
ARMS = {"fine": "(a) N fine", "coarse": "(b) + M coarse", "all_fine": "(c) N + M fine"}


def fieller(numerator: Sequence[float], denominator: Sequence[float]) -> tuple[float, float]:
    """Return Fieller's 95% interval for mean(numerator) / mean(denominator) of paired values.

    The set of ratios r whose paired contrast ``numerator - r * denominator`` has a mean
    that a two-sided t-test (n - 1 degrees of freedom) does not reject: the roots of
    (mx - r my)^2 = t^2 (vxx - 2 r vxy + r^2 vyy) / n. Where the denominator's mean is
    not itself significant, the set is unbounded: ``(-inf, inf)``.

    >>> low, high = fieller([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])  # exactly half, every pair
    >>> round(low, 6), round(high, 6)
    (0.5, 0.5)
    >>> fieller([1.0, -1.0, 0.5], [0.1, -0.2, 0.05])
    (-inf, inf)
    """
    n = len(numerator)
    if n != len(denominator) or n < 2:
        raise ValueError(f"fieller needs two or more pairs, got {n} and {len(denominator)}")
    mx, my = statistics.fmean(numerator), statistics.fmean(denominator)
    vxx = statistics.variance(numerator) / n
    vyy = statistics.variance(denominator) / n
    vxy = statistics.covariance(numerator, denominator) / n
    t2 = t_quantile(0.975, n - 1) ** 2
    a = my * my - t2 * vyy
    b = -2.0 * (mx * my - t2 * vxy)
    c = mx * mx - t2 * vxx
    if a <= 0.0:  # the denominator's mean is not significantly away from 0
        return -math.inf, math.inf
    root = math.sqrt(max(b * b - 4.0 * a * c, 0.0))
    return (-b - root) / (2.0 * a), (-b + root) / (2.0 * a)


def mean_cell(estimate: Estimate) -> str:
    """Return ``mean ± ci`` (``mean (1 seed)`` without an interval)."""
    if estimate.ci95 is None:
        return f"{estimate.mean:.4f} (1 seed)"
    return f"{estimate.mean:.4f} ± {estimate.ci95:.4f}"


def difference_cell(estimate: Estimate) -> str:
    """Return ``+diff ± ci (p=...)``."""
    if estimate.ci95 is None or estimate.p is None:
        return f"{estimate.mean:+.4f} (1 pair)"
    return f"{estimate.mean:+.4f} ± {estimate.ci95:.4f} (p={estimate.p:.2g})"


def share_cell(gained: Sequence[float], ceiling: Sequence[float]) -> str:
    """Return the share of the gap closed, ``mean(b-a)/mean(c-a)`` in percent [Fieller CI]."""
    gap = statistics.fmean(ceiling)
    if gap == 0.0:
        return "- (no gap to (c))"
    share = statistics.fmean(gained) / gap
    if len(gained) < 2:
        return f"{share:.0%} (1 pair)"
    low, high = fieller(gained, ceiling)
    if math.isinf(low) or math.isinf(high):
        return f"{share:.0%} [unbounded: the gap to (c) is not significant]"
    return f"{share:.0%} [{low:.0%}, {high:.0%}]"


def study_tables(sweep: Path) -> str:
    """Return the Markdown tables of the study's sweep: one per loss, a row per level."""
    configurations = group_runs(load_runs([sweep]))
    values = Values(configurations, "miou")
    levels = [column[5:] for column in values.columns if column.startswith("miou/")]
    found: dict[tuple[str, str, str], dict[str, float]] = {}  # (loss, arm, level) -> by seed
    for configuration in configurations:
        arm = override_value(configuration.overrides.get("study.arm"))
        loss = override_value(configuration.overrides.get("loss")) or "hierarchical"
        if arm not in ARMS:
            raise SystemExit(f"{configuration.label}: not a run of experiment=coarse_evidence")
        for level in levels:
            for run in configuration.runs:
                value = values.of[run.path][f"miou/{level}"]
                if value is not None and run.seed is not None:
                    found.setdefault((loss, arm, level), {})[run.seed] = value
    losses = list(dict.fromkeys(loss for loss, _, _ in found))
    text = [f"Test mIoU per level ({values.stage} split), mean ± 95% CI over seeds; paired "
            "differences over the seeds both arms ran (p: paired t-test); the share of the "
            "gap to (c) closed by the coarse images, mean(b - a) / mean(c - a), with "
            "Fieller's 95% interval."]  # fmt: skip
    header = [
        "level", *ARMS.values(), "(b) - (a)", "(c) - (a)", "gap to (c) closed"
    ]  # fmt: skip
    for loss in losses:
        text.append(f"\n`loss={loss}`:\n\n| " + " | ".join(header) + " |")
        text.append("|---" + "|---:" * (len(header) - 1) + "|")
        for level in levels:
            by_arm = {arm: found.get((loss, arm, level), {}) for arm in ARMS}
            cells = [mean_cell(mean_ci(list(s.values()))) if s else "-" for s in by_arm.values()]
            seeds = sorted(set(by_arm["fine"]) & set(by_arm["coarse"]) & set(by_arm["all_fine"]))
            if seeds:
                a = [by_arm["fine"][s] for s in seeds]
                b = [by_arm["coarse"][s] for s in seeds]
                c = [by_arm["all_fine"][s] for s in seeds]
                gained = [y - x for x, y in zip(a, b, strict=True)]
                ceiling = [y - x for x, y in zip(a, c, strict=True)]
                cells += [
                    difference_cell(paired_difference(b, a)),
                    difference_cell(paired_difference(c, a)),
                    share_cell(gained, ceiling),
                ]
            else:
                cells += ["-", "-", "-"]
            text.append(f"| {level} | " + " | ".join(cells) + " |")
    return "\n".join(text) + "\n"


def main() -> None:
    """Read the sweep and write ``coarse_evidence.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="the sweep folder of experiment=coarse_evidence")
    sweep = parser.parse_args().sweep
    text = study_tables(sweep)
    (sweep / "coarse_evidence.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
