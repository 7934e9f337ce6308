"""hl-tree: check a hierarchy and print it as a tree with its level table; ``--png`` draws it.

Usage::

    hl-tree path/to/tree.txt          # a text or YAML tree file
    hl-tree synthetic --png tree.png  # a built-in name; also draw it (needs matplotlib)

A bad file exits with status 1 and its ``file:line: problem`` on stderr. The drawing is a
PNG whatever ``FILE`` is called, written whole (:mod:`hl_lightning.atomic`), never over the
tree file itself.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hl_lightning.atomic import atomic_write
from hl_lightning.cli._matplotlib import agg_figure
from hl_lightning.hierarchies import BUILTIN_HIERARCHIES, load_hierarchy
from hl_lightning.hierarchy import Hierarchy, HierarchyError, Node
from hl_lightning.palette import level_palettes

__all__ = ["draw_tree", "level_summary", "main", "render_tree"]

PROG = "hl-tree"


def render_tree(hierarchy: Hierarchy, title: str = ".") -> str:
    """Return the tree as text, one node a line under ``title``; leaves show their label id.

    Example:
        >>> print(render_tree(Hierarchy.from_dict({"sky": None, "vehicle": ["car", "truck"]})))
        .
        |-- sky  [0]
        `-- vehicle
            |-- car  [1]
            `-- truck  [2]
    """
    label = {name: i for i, name in enumerate(hierarchy.leaves)}
    lines = [title]
    stack = _branches(hierarchy.roots, "")  # (node, its line's prefix, last of its siblings)
    while stack:
        node, prefix, last = stack.pop()
        suffix = "" if node.children else f"  [{label[node.name]}]"
        lines.append(f"{prefix}{'`-- ' if last else '|-- '}{node.name}{suffix}")
        stack.extend(_branches(node.children, prefix + ("    " if last else "|   ")))
    return "\n".join(lines)


def _branches(nodes: Sequence[Node], prefix: str) -> list[tuple[Node, str, bool]]:
    """Return (node, prefix, whether it is the last sibling) in reverse order, for a stack."""
    return [(node, prefix, i == len(nodes) - 1) for i, node in reversed(list(enumerate(nodes)))]


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


def draw_tree(hierarchy: Hierarchy, path: str | Path, title: str | None = None) -> None:
    """Draw the tree into a PNG file (replaced whole): one row per level, leaves on the
    bottom row.

    Nodes take their level's colour (:func:`~hl_lightning.palette.level_palettes`); a
    leaf shallower than the deepest level is joined to the bottom row by a dashed line
    (it stands for itself at the deeper levels). Needs matplotlib (``[plots]`` extra).
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
    # leaves sit at -depth; every other node at -(its level + 1); the root at 0
    leaves = hierarchy.num_leaves
    figure = agg_figure(
        PROG, figsize=(max(6.0, 0.3 * leaves + 2.0), 1.1 * depth + 2.5), layout="constrained"
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
            axes.annotate(
                node.name,
                (x[node.name], bottom),
                xytext=(0, -8),
                textcoords="offset points",
                rotation=90,
                ha="center",
                va="top",
                fontsize=8,
            )
            continue
        axes.scatter([x[node.name]], [own], s=80, color=colour, edgecolor="0.2", zorder=3)
        axes.annotate(
            node.name,
            (x[node.name], own),
            xytext=(6, 4),
            textcoords="offset points",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    axes.set_yticks(
        [0, *range(-1, bottom - 1, -1)],
        [
            "root",
            *(f"{n} ({hierarchy.num_groups(d)})" for d, n in enumerate(hierarchy.level_names)),
        ],
    )
    axes.set_xticks([])
    axes.set_xlim(-0.8, leaves - 0.2)
    axes.set_ylim(bottom - 0.4, 0.4)
    axes.spines[["top", "right", "bottom"]].set_visible(False)
    summary = f"{leaves} leaves, {depth} levels"
    axes.set_title(f"{title}: {summary}" if title else summary, fontsize=10)
    with atomic_write(path, "wb") as file:
        figure.savefig(file, dpi=100, format="png")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hl-tree``; return the exit status (1 for a bad hierarchy)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check a class hierarchy and print it as a tree with its level table.",
    )
    parser.add_argument(
        "source",
        metavar="PATH_OR_NAME",
        help="a tree file (.txt indented, or .yaml/.yml) or a built-in name: "
        + ", ".join(BUILTIN_HIERARCHIES),
    )
    parser.add_argument(
        "--png", type=Path, metavar="FILE", help="also draw the tree into FILE (needs matplotlib)"
    )
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
