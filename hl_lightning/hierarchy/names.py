"""What a class name may be: visible text that cannot pass for another name.

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
from collections.abc import Iterable

from hl_lightning.hierarchy.node import HierarchyError

__all__ = ["check_invisible", "name_list", "name_problem"]

_NEWLINE = re.compile(r"\r\n|\r|\n")
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
    for index, char in enumerate(text):
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
