"""Random unbalanced trees of any size and depth, for tests and benchmarks."""

from __future__ import annotations

import random

from hl_lightning.hierarchy import Hierarchy, Node

__all__ = ["random_hierarchy"]


def random_hierarchy(
    num_leaves: int, depth: int, seed: int = 0, shuffle_leaves: bool = False
) -> Hierarchy:
    """Return a random unbalanced hierarchy with exactly ``num_leaves`` leaves and ``depth`` levels.

    Branching is about ``num_leaves ** (1 / depth)`` per node; a part of size one above the
    deepest level becomes a shallow leaf, so leaves sit at several depths. Label ids follow
    the tree order, or with ``shuffle_leaves`` a random order (the same tree either way).

    Example:
        >>> h = random_hierarchy(1000, 6)
        >>> h.num_leaves, h.num_levels
        (1000, 6)
        >>> random_hierarchy(8, 2, shuffle_leaves=True).level_index(-1).tolist() != list(range(8))
        True
    """
    if num_leaves < 2 or depth < 1 or num_leaves < 2 ** (depth - 1):
        raise ValueError(f"cannot build a tree of depth {depth} with {num_leaves} leaves")
    rng = random.Random(seed)
    counter = {"group": 0, "leaf": 0}

    def name(kind: str) -> str:
        counter[kind] += 1
        return f"{kind}{counter[kind] - 1}"

    def split(n: int, levels: int, deep: bool) -> list[Node]:
        if levels == 1:
            return [Node(name("leaf")) for _ in range(n)]
        if n == 1:  # the deep branch with one leaf left: a chain of single-child groups
            return [Node(name("group"), tuple(split(1, levels - 1, deep)))]
        width = round(n ** (1 / levels) * rng.uniform(0.7, 1.3))
        width = max(2, min(width, n // 2 ** (levels - 1) if deep else n))
        cuts = sorted(rng.sample(range(1, n), width - 1))
        sizes = [b - a for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
        sizes.sort(reverse=True)  # the first part is the largest: it carries the full depth
        nodes = []
        for i, size in enumerate(sizes):
            if size == 1 and not (deep and i == 0):
                nodes.append(Node(name("leaf")))
            else:
                nodes.append(Node(name("group"), tuple(split(size, levels - 1, deep and i == 0))))
        return nodes

    hierarchy = Hierarchy(split(num_leaves, depth, True))
    if shuffle_leaves:
        leaves = list(hierarchy.leaves)
        rng.shuffle(leaves)
        hierarchy = hierarchy.reorder(leaves)
    return hierarchy
