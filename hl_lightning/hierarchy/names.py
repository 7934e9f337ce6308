"""The names of a tree: what a class name may be, and each name used once.

Names are matched to data set classes and to each other by their text, so a name that
looks like another one but differs is refused, in every format: a tab or another control
character in it, an invisible (format, Unicode category ``Cf``) character such as a
zero-width space or a byte-order mark, whitespace other than a plain space, whitespace at
its ends, or nothing but whitespace and invisible characters. In a file, an invisible
character is refused wherever it is (comments included), except one byte-order mark at
the very start.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from hl_lightning.hierarchy.node import HierarchyError, Node, preorder, where

__all__ = [
    "check_class_names",
    "check_invisible",
    "check_level_names",
    "check_tree",
    "name_list",
    "name_problem",
]

_NEWLINE = re.compile(r"\r\n|\r|\n")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_BOM = "\ufeff"


def _describe(char: str) -> str:
    """Return ``U+200B (ZERO WIDTH SPACE)``: the code point and its Unicode name if it has one."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def _hidden(char: str) -> bool:
    """Whether a character shows nothing: whitespace, a control or a format character."""
    return char.isspace() or unicodedata.category(char) in {"Cc", "Cf", "Zs", "Zl", "Zp"}


def name_problem(name: str) -> str | None:
    """Return what is wrong with a class name (a phrase naming it), or None if it is fine.

    Example:
        >>> name_problem("traffic sign") is None
        True
        >>> print(name_problem("traffic\\u200bsign"))
        class name 'traffic\\u200bsign' contains the invisible character U+200B (ZERO WIDTH SPACE)
    """
    if not name:
        return "empty class name"
    if all(_hidden(char) for char in name):
        return f"class name {name!r} is blank: only whitespace or invisible characters"
    for char in name:
        category = unicodedata.category(char)
        if char == "\t":
            return f"class name {name!r} contains a tab"
        if category == "Cc":
            return f"class name {name!r} contains the control character {_describe(char)}"
        if category == "Cf":
            return f"class name {name!r} contains the invisible character {_describe(char)}"
    if name != name.strip():
        return f"class name {name!r} starts or ends with whitespace"
    for char in name:
        if char != " " and _hidden(char):
            return (
                f"class name {name!r} contains the whitespace character {_describe(char)}; "
                "separate words with plain spaces"
            )
    return None


def check_invisible(text: str, source: str) -> None:
    """Raise a HierarchyError at the first invisible (``Cf``) character of a file's text.

    ``text`` is the file's text after its one leading byte-order mark (if any) is removed:
    any byte-order mark left is past the file's start.

    Example:
        >>> check_invisible("a\\n\\tb\\n", "tree.txt")
        >>> check_invisible("a\\nb\\u200b\\n", "tree.txt")
        Traceback (most recent call last):
            ...
        hl_lightning.hierarchy.node.HierarchyError: tree.txt:2: the invisible character \
U+200B (ZERO WIDTH SPACE) at column 2; delete it
    """
    for match in _NON_ASCII.finditer(text):  # every format character is outside ASCII
        char, index = match.group(), match.start()
        if unicodedata.category(char) != "Cf":
            continue
        before = _NEWLINE.split(text[:index])
        line, column = len(before), len(before[-1]) + 1
        what = f"the invisible character {_describe(char)} at column {column}"
        if char == _BOM:
            what += ", a byte-order mark: one is allowed only at the very start of a file"
        raise HierarchyError(f"{source}:{line}: {what}; delete it")


def name_list(names: Iterable[object], what: str) -> list[str]:
    """Return the names as strings; a bare string or a None name is refused (naming ``what``).

    Example:
        >>> name_list(["sky", 3], "class names")
        ['sky', '3']
        >>> name_list("sky", "class names")
        Traceback (most recent call last):
            ...
        hl_lightning.hierarchy.node.HierarchyError: class names must be a list of names, \
not the string 'sky'
    """
    if isinstance(names, str):
        raise HierarchyError(f"{what} must be a list of names, not the string {names!r}")
    out = []
    for i, name in enumerate(names):
        if name is None:
            raise HierarchyError(f"{what}[{i}] is None, not a name")
        out.append(str(name))
    return out


def check_tree(roots: Sequence[Node], source: str | None) -> None:
    """Raise a HierarchyError, at the file and line where known, unless the names are usable.

    Every name passes :func:`name_problem`, no name is used twice, and there are at least
    two leaves.

    Example:
        >>> check_tree([Node("x", (), 1), Node("x", (), 2)], "t")
        Traceback (most recent call last):
            ...
        hl_lightning.hierarchy.node.HierarchyError: t:2: duplicate leaf name 'x' (lines 1 and 2)
    """
    if not roots:
        raise HierarchyError(f"{where(source, None)}the hierarchy is empty")
    seen: dict[str, Node] = {}
    path: list[str] = []  # the names of the node's ancestors
    for node, depth in preorder(roots):
        del path[depth:]
        problem = name_problem(node.name)
        if problem is not None:
            under = f"under {'/'.join(path)}: " if path and node.line is None else ""
            raise HierarchyError(f"{where(source, node.line)}{under}{problem}")
        path.append(node.name)
        first = seen.get(node.name)
        if first is None:
            seen[node.name] = node
            continue
        lines = f" (lines {first.line} and {node.line})" if node.line is not None else ""
        if first.is_leaf and node.is_leaf:
            what = "duplicate leaf name"
        elif first.is_leaf or node.is_leaf:
            what = "node is both a leaf and a parent"
        else:
            what = "duplicate group name"
        raise HierarchyError(f"{where(source, node.line)}{what} {node.name!r}{lines}")
    leaves = [node for node in seen.values() if node.is_leaf]
    if len(leaves) < 2:
        raise HierarchyError(
            f"{where(source, leaves[0].line)}a hierarchy needs at least two leaves "
            f"(classes), found only {leaves[0].name!r}"
        )


def _shown(names: Iterable[str]) -> str:
    """Return the names joined by commas, quoted where they hold something hard to see."""
    return ", ".join(name if name_problem(name) is None else repr(name) for name in names)


def check_class_names(names: Sequence[str], leaves: Sequence[str], source: str | None) -> None:
    """Raise one HierarchyError listing every missing, extra and duplicate class name.

    Example:
        >>> check_class_names(["b", "a"], ["a", "b"], None)
        >>> check_class_names(["a", "a", "c"], ["a", "b"], "tree.txt")
        Traceback (most recent call last):
            ...
        hl_lightning.hierarchy.node.HierarchyError: class names do not match the hierarchy's \
leaves (tree.txt): missing from the class names: b; not leaves of the hierarchy: c; \
duplicated in the class names: a
    """
    given, known = set(names), set(leaves)
    duplicates = sorted(n for n, c in Counter(names).items() if c > 1)
    missing = [n for n in leaves if n not in given]
    extra = [n for n in dict.fromkeys(names) if n not in known]
    problems = []
    if missing:
        problems.append(f"missing from the class names: {_shown(missing)}")
    if extra:
        problems.append(f"not leaves of the hierarchy: {_shown(extra)}")
    if duplicates:
        problems.append(f"duplicated in the class names: {_shown(duplicates)}")
    if problems:
        where = f" ({source})" if source else ""
        raise HierarchyError(
            f"class names do not match the hierarchy's leaves{where}: " + "; ".join(problems)
        )


def check_level_names(names: Iterable[str], depth: int) -> tuple[str, ...]:
    """Return the level names as a tuple, checked to be ``depth`` unique names.

    Example:
        >>> check_level_names(["coarse", "fine"], 2)
        ('coarse', 'fine')
    """
    names = tuple(name_list(names, "level names"))
    if len(names) != depth:
        raise HierarchyError(
            f"{len(names)} level names given for a hierarchy with {depth} levels: {names}"
        )
    if len(set(names)) != len(names):
        raise HierarchyError(f"level names must be unique: {names}")
    return names
