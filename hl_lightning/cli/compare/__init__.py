"""hl-compare: the paper's comparison figures and per-level tables over seeds from hl-train runs.

Usage::

    hl-compare multirun/train/2026-01-01_12-00-00     # a sweep: every job folder below it
    hl-compare outputs/train/run_a outputs/train/run_b --out figures
    hl-compare SWEEP --metric acc                       # per-level pixel accuracy instead
    hl-compare SWEEP --baseline loss=hxe                # paired differences against hxe

Each run is a folder with ``csv/metrics.csv`` (hl-train's CSV logger); a folder without
one is searched for runs below it (a multirun directory and its job folders). A metrics
file that is cut short (its last row without a line break: a killed run, or one still
writing) or broken (a row with the wrong number of fields, a value that is not a number),
or ``.hydra`` files that are not YAML, stop the comparison with one error that names every
such file and line: no value of a broken run is used, and no run is left out silently. A
run that validated fewer epochs than another seed of its configuration, or has no test
values where another has (stopped between two rows: killed, or still running), gets a note.

Configurations. Runs whose overrides (``.hydra/overrides.yaml``) are the same but for
``seed`` are the seeds of one configuration. A run's seed is its ``seed`` override, else
the ``seed`` of its ``.hydra/config.yaml``; a run without ``.hydra/overrides.yaml`` is a
configuration of its own. Configurations are labelled by the overrides in which they
differ (``loss=flat``), else by their first run's folder name. The runs of one
configuration must have distinct, known seeds and ``.hydra/config.yaml`` files that agree
on every key but ``seed``: otherwise a :class:`CompareError` names the two runs and the
keys in which they differ.

Trees. Levels are matched by name. A run's tree is its ``hierarchy.source`` and its
logged levels; runs on different trees get separate rows of panels in the figures and a
``tree`` column in the tables (``baseline_tree`` too for the differences), and the
positional level names of trees without level names (``level0``, ...) are qualified with
the tree's name (``level0@flat``) where two trees have them.

Statistics. A configuration's value is the mean over its seeds with the 95% Student-t
interval, mean ± t(0.975, n-1)·s/√n; a configuration with one seed has no interval.
``--baseline KEY=VALUE`` (repeat it for several keys; default ``loss=flat`` when a
configuration has that override) chooses the baseline configurations, those with these
overrides; its keys are the compared keys. Every other configuration is paired with the
baseline that has the same overrides but for the compared keys, over the seeds both ran:
the mean of the per-seed differences, its 95% CI and the two-sided p-value of the paired
t-test. A baseline that matches no configuration is a CompareError naming the
configurations; so is a configuration that differs from every baseline in another key too
(data.image_size, say: its difference would mix two changes), naming those keys. With the
default baseline such runs only get a note, and no paired differences.

The values, per level: ``<metric>/<level>``, the final value (the test one when every run
was tested, else the last validation); ``<metric>_auc/<level>``, the mean of the
validation curve over epochs (its area over the number of epochs); ``epochs_to_95/<level>``,
the epochs trained until the validation curve first reached 95% of the run's final
validation value (for ``--metric loss``: fell to the final value / 0.95); then the mistake
severity and the share of serious mistakes; and, where the runs logged them, ``ece/<level>``
(the calibration error) and ``inconsistency`` (the share of pixels off a tree path).
Writes into ``--out`` (default: the first folder given):

- ``loss_curves.png``: per-level training and validation loss per epoch;
- ``<metric>_curves.png``: per-level validation ``<metric>`` (default mIoU) per epoch; a line
  per configuration, the mean over its seeds, in a band from their minimum to maximum (a
  single epoch: a marker with a bar);
- ``comparison.csv``: per configuration ``run``, ``n_seeds``, ``seeds``, ``stage`` and, per
  value, ``<value>_mean`` and ``<value>_ci95`` (the half-width; empty for one seed);
- ``differences.csv`` (when there is a baseline): per paired configuration ``run``,
  ``baseline``, ``n_pairs``, ``seeds`` and, per value, ``<value>_diff``, ``<value>_ci95``
  and ``<value>_p``;
- ``comparison.md``: both tables, cells ``mean ± ci`` (``0.5200 (1 seed)`` for one seed);
  they are printed too.

Figures need matplotlib (``pip install "hl_lightning[plots]"``).

The rooms: :mod:`.metrics_csv` (a metrics file, checked), :mod:`.runs` (finding and reading
runs), :mod:`.configurations` (seeds of one configuration), :mod:`.stats` (Student t, means,
paired tests), :mod:`.summary` (values, means, differences), :mod:`.tables` and
:mod:`.plots` (the outputs), :mod:`.command` (the command and its writes).
"""

from hl_lightning.cli.compare.command import compare, main, write_output
from hl_lightning.cli.compare.configurations import Configuration, group_runs
from hl_lightning.cli.compare.metrics_csv import MetricsFileError, read_metrics_csv
from hl_lightning.cli.compare.runs import CompareError, Run, Tree, find_runs, load_runs
from hl_lightning.cli.compare.summary import TableRow, difference_rows, summary_rows

__all__ = [
    "CompareError",
    "Configuration",
    "MetricsFileError",
    "Run",
    "TableRow",
    "Tree",
    "compare",
    "difference_rows",
    "find_runs",
    "group_runs",
    "load_runs",
    "main",
    "read_metrics_csv",
    "summary_rows",
    "write_output",
]
