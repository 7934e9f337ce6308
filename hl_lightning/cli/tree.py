"""hl-tree: check a hierarchy and print it as a tree with its node ids and level table.

Every node shows its id, the label id a mask uses for it: the leaves ``0..K-1``, then the
internal nodes (coarse labels, see :attr:`Hierarchy.node_names`). ``--png`` draws the tree.

Usage::

    hl-tree path/to/tree.txt          # a text, YAML or JSON tree file
    hl-tree synthetic --png tree.png  # a built-in name; also draw it (needs matplotlib)

A bad file exits with status 1 and its ``file:line: problem`` on stderr. The drawing is a
PNG whatever ``FILE`` is called, written whole (:mod:`hl_lightning.atomic`), never over the
tree file itself.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hl_lightning.atomic import atomic_write
from hl_lightning.cli._launch import CommandLineParser
from hl_lightning.cli._matplotlib import agg_figure
from hl_lightning.cli._version import version_text
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, load_hierarchy
from hl_lightning.hierarchy import Hierarchy, HierarchyError, Node
from hl_lightning.palette import level_palettes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["draw_tree", "id_summary", "level_summary", "main", "render_tree", "tree_figure"]

PROG = "hl-tree"


def render_tree(hierarchy: Hierarchy, title: str = ".") -> str:
    """Return the tree as text, one node a line under ``title``, each with its node id.

    Example:
        >>> print(render_tree(Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})))
        .
        |-- sky  [0]
        `-- vehicle  [3]
            |-- car  [1]
            `-- truck  [2]
    """
    node_id = {name: i for i, name in enumerate(hierarchy.node_names)}
    lines = [title]
    stack = _branches(hierarchy.roots, "")  # (node, its line's prefix, last of its siblings)
    while stack:
        node, prefix, last = stack.pop()
        lines.append(f"{prefix}{'`-- ' if last else '|-- '}{node.name}  [{node_id[node.name]}]")
        stack.extend(_branches(node.children, prefix + ("    " if last else "|   ")))
    return "\n".join(lines)


def _branches(nodes: Sequence[Node], prefix: str) -> list[tuple[Node, str, bool]]:
    """Return (node, prefix, whether it is the last sibling) in reverse order, for a stack."""
    return [(node, prefix, i == len(nodes) - 1) for i, node in reversed(list(enumerate(nodes)))]


def id_summary(hierarchy: Hierarchy) -> str:
    """Return the line that says which node ids are leaves and which are coarse labels.

    Example:
        >>> id_summary(Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]}))
        'node ids: leaves (classes) 0-2, internal nodes (coarse labels) 3'
    """
    k, n = hierarchy.num_leaves, hierarchy.num_nodes
    internal = f", internal nodes (coarse labels) {_span(k, n - 1)}" if n > k else ""
    return f"node ids: leaves (classes) {_span(0, k - 1)}{internal}"


def _span(first: int, last: int) -> str:
    """Return ``first-last``, or ``first`` alone when they are equal."""
    return f"{first}-{last}" if last > first else f"{first}"


def level_summary(hierarchy: Hierarchy) -> str:
    """Return the level table (groups and leaves per level) and a total line.

    ``leaves`` counts the classes whose leaf sits at that level; a shallower leaf stands
    for itself at the deeper levels, so it is also one of their groups.

    Example:
        >>> print(level_summary(Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})))
        level  name     groups  leaves
        0      level0        2       1
        1      level1        3       2
        3 leaves (classes), depth 2 (levels)
    """
    leaves_at = [0] * hierarchy.num_levels
    for node, depth in hierarchy.walk():
        leaves_at[depth] += node.is_leaf
    width = max(8, *(len(name) for name in hierarchy.level_names))
    lines = [f"{'level':<6} {'name':<{width}} {'groups':>6}  {'leaves':>6}"]
    for d, name in enumerate(hierarchy.level_names):
        lines.append(f"{d:<6} {name:<{width}} {hierarchy.num_groups(d):>6}  {leaves_at[d]:>6}")
    lines.append(f"{hierarchy.num_leaves} leaves (classes), depth {hierarchy.num_levels} (levels)")
    return "\n".join(lines)


_FONT = 8  # points, every node label
_LABEL_OFFSET = 6  # points right of its node: where an inner node's label starts
_DPI = 100


def draw_tree(hierarchy: Hierarchy, path: str | Path, title: str | None = None) -> None:
    """Draw the tree into a PNG file (:func:`tree_figure`; the file replaced whole). Needs
    matplotlib (``[plots]``)."""
    figure = tree_figure(hierarchy, title)
    with atomic_write(path, "wb") as file:
        figure.savefig(file, dpi=_DPI, format="png")


def tree_figure(hierarchy: Hierarchy, title: str | None = None) -> Figure:
    """Return the tree drawn as a matplotlib figure: one row per level, leaves on the bottom row.

    Nodes take their level's colour (:func:`~hl_lightning.palette.level_palettes`); a
    leaf shallower than the deepest level is joined to the bottom row by a dashed line
    (it stands for itself at the deeper levels). The figure is sized from its labels'
    measured widths: every label lies inside it, and the labels of a row do not overlap.

    Example:
        >>> figure = tree_figure(Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]}))
        >>> figure.get_size_inches().round(1).tolist()
        [6.0, 3.9]
    """
    depth = hierarchy.num_levels
    bottom = -depth
    palettes = [p.float().div(255).tolist() for p in level_palettes(hierarchy)]
    nodes = list(hierarchy.walk())
    leaf_names = [node.name for node, _ in nodes if node.is_leaf]
    x = {name: float(i) for i, name in enumerate(leaf_names)}  # leaves in tree order
    for node, _ in reversed(nodes):  # a group after its descendants: midway between its ends
        if not node.is_leaf:
            x[node.name] = (x[node.children[0].name] + x[node.children[-1].name]) / 2
    figure = agg_figure(PROG, layout="constrained", dpi=_DPI)
    width = _text_widths(figure, [node.name for node, _ in nodes])  # inches
    inner = [(node.name, level) for node, level in nodes if not node.is_leaf]
    step = _leaf_step(inner, x, width)  # inches between neighbouring leaves
    right = max(
        [len(leaf_names) - 0.2, *(x[n] + (_LABEL_OFFSET / 72 + width[n]) / step for n, _ in inner)]
    )
    level_labels = [
        "root",
        *(f"{n} ({hierarchy.num_groups(d)})" for d, n in enumerate(hierarchy.level_names)),
    ]
    figure.set_size_inches(
        max(6.0, step * (right + 0.8) + max(_text_widths(figure, level_labels).values()) + 0.6),
        1.1 * depth + 1.4 + max(width[name] for name in leaf_names),
    )
    axes = figure.add_subplot()
    root_x = (x[hierarchy.roots[0].name] + x[hierarchy.roots[-1].name]) / 2
    axes.scatter([root_x], [0], s=30, color="0.4", zorder=3)

    ancestors: list[Node] = []  # those of the node being drawn, and the node
    for node, level in nodes:  # depth-first: a parent before its children
        del ancestors[level:]
        parent = (x[ancestors[-1].name], -level) if ancestors else (root_x, 0.0)
        ancestors.append(node)
        colour = palettes[level][hierarchy.group_names(level).index(node.name)]
        own = -(level + 1)
        axes.plot([parent[0], x[node.name]], [parent[1], own], color="0.55", lw=1, zorder=1)
        if node.is_leaf:
            if own != bottom:  # it stands for itself down to the bottom row
                axes.plot([x[node.name]] * 2, [own, bottom], color="0.55", lw=1, ls="--")
                axes.scatter([x[node.name]], [own], s=20, color=colour, zorder=3)
            axes.scatter([x[node.name]], [bottom], s=60, color=colour, edgecolor="0.2", zorder=3)
            continue
        axes.scatter([x[node.name]], [own], s=80, color=colour, edgecolor="0.2", zorder=3)
        axes.annotate(
            node.name,
            (x[node.name], own),
            xytext=(_LABEL_OFFSET, 4),
            textcoords="offset points",
            fontsize=_FONT,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    # the leaves' names as the x axis's labels: the layout keeps room for them
    axes.set_xticks([x[name] for name in leaf_names], leaf_names, rotation=90, fontsize=_FONT)
    axes.tick_params(axis="x", length=0)
    axes.set_yticks([0, *range(-1, bottom - 1, -1)], level_labels)
    axes.set_xlim(-0.8, right)
    axes.set_ylim(bottom - 0.4, 0.4)
    axes.spines[["top", "right", "bottom"]].set_visible(False)
    summary = f"{len(leaf_names)} leaves, {depth} levels"
    axes.set_title(f"{title}: {summary}" if title else summary, fontsize=10)
    return figure


def _text_widths(figure: Figure, texts: Sequence[str], size: float = _FONT) -> dict[str, float]:
    """Return the width in inches of each text drawn at ``size`` points on ``figure``."""
    from matplotlib.font_manager import FontProperties

    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's
    font = FontProperties(size=size)
    return {
        t: renderer.get_text_width_height_descent(t, font, ismath=False)[0] / figure.dpi
        for t in texts
    }


def _leaf_step(
    inner: Sequence[tuple[str, int]], x: dict[str, float], width: dict[str, float]
) -> float:
    """Return the inches between neighbouring leaves at which no inner node's label, which
    starts just right of its node, reaches the next node of its row (0.3 at least)."""
    rows: dict[int, list[str]] = {}
    for name, level in inner:
        rows.setdefault(level, []).append(name)
    step = 0.3
    for names in rows.values():
        names.sort(key=x.__getitem__)
        for left, right in itertools.pairwise(names):
            step = max(step, (width[left] + 0.1) / (x[right] - x[left]))
    return step


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hl-tree``; return the exit status (1 for a bad hierarchy)."""
    parser = CommandLineParser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # --version on one line
        description="Check a class hierarchy and print it as a tree with its level table.",
    )
    parser.add_argument(
        "source",
        metavar="PATH_OR_NAME",
        help="a tree file (indented text, .yaml/.yml or .json) or a built-in name: "
        + ", ".join(BUILTIN_HIERARCHIES),
    )
    parser.add_argument(
        "--png", type=Path, metavar="FILE", help="also draw the tree into FILE (needs matplotlib)"
    )
    parser.add_argument("--version", action="version", version=version_text(PROG))
    args = parser.parse_args(argv)
    try:
        hierarchy = load_hierarchy(args.source)
    except HierarchyError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    source = Path(args.source)
    if args.png is not None and source.is_file() and _same_file(args.png, source):
        message = f"--png {args.png} would overwrite the input tree file {source}"
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    print(render_tree(hierarchy, args.source))
    print(id_summary(hierarchy))
    print()
    print(level_summary(hierarchy))
    if args.png is not None:
        try:
            draw_tree(hierarchy, args.png, title=source.name)
        except OSError as err:  # no such folder, no permission, a full disk
            print(f"{PROG}: error: --png {args.png}: {err}", file=sys.stderr)
            return 1
        print(f"drawn: {args.png}")
    return 0


def _same_file(a: Path, b: Path) -> bool:
    """Return whether two existing paths name one file (links and ``..`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist
        return False


if __name__ == "__main__":
    sys.exit(main())
