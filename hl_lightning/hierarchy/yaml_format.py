"""The YAML (and JSON) hierarchy format: nested mappings and lists, with the line of every name.

The file is composed into YAML nodes (which keep their lines) by :class:`TreeLoader`,
PyYAML's ``SafeLoader`` with two changes:

- aliases are refused where they appear, before anything is expanded: a hierarchy is a
  tree, and nested aliases would expand exponentially (or, referring to their own anchor,
  never end);
- the composer does not recurse. PyYAML's ``compose_node`` calls itself once per nesting
  level (two Python frames a level), so a tree about 500 levels deep would end in a
  ``RecursionError``; every other part of the tree's handling works at any depth.

A JSON tree file is read by the same loader (:func:`parse_json`): JSON is YAML but for
tabs, which JSON allows between tokens and YAML does not.
"""

from __future__ import annotations

import json
from typing import cast

import yaml

from hl_lightning.hierarchy.names import check_invisible
from hl_lightning.hierarchy.node import Entry, HierarchyError, Node, build_tree

__all__ = ["TreeLoader", "parse_json", "parse_yaml"]

_NULL = "tag:yaml.org,2002:null"


class TreeLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that composes without recursion and refuses aliases and second documents.

    Only composition is used (:meth:`get_single_node`); nothing is constructed.

    Example:
        >>> loader = TreeLoader("a: [b, c]\\n", "tree.yaml")
        >>> loader.get_single_node().value[0][1].value[1].value
        'c'
        >>> TreeLoader("a: &x [b]\\nc: *x\\n", "t.yaml").get_single_node()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        hl_lightning.hierarchy.node.HierarchyError: t.yaml:2: YAML aliases ... (found *x); ...
    """

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source

    def compose_document(self) -> yaml.Node:
        """Return the node of the document; a second document is refused at its line."""
        node = cast(yaml.Node, super().compose_document())
        if not self.check_event(yaml.StreamEndEvent):
            line = self.peek_event().start_mark.line + 1
            raise HierarchyError(
                f"{self.source}:{line}: a second YAML document; a hierarchy file holds one"
            )
        return node

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        """Return the node of the next node event and of the events up to its end."""
        open_nodes: list[tuple[yaml.CollectionNode, list[yaml.Node]]] = []  # with their items
        while True:
            event = self.get_event()
            start, end = cast(yaml.Mark, event.start_mark), cast(yaml.Mark, event.end_mark)
            node: yaml.Node
            if isinstance(event, yaml.AliasEvent):
                raise HierarchyError(
                    f"{self.source}:{start.line + 1}: YAML aliases (&anchor / *alias) are not "
                    f"allowed in a hierarchy (found *{event.anchor}); write the class names out"
                )
            if isinstance(event, yaml.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, start, end)
            elif isinstance(event, yaml.CollectionStartEvent):
                kind = (
                    yaml.SequenceNode
                    if isinstance(event, yaml.SequenceStartEvent)
                    else yaml.MappingNode
                )
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(kind, None, event.implicit)
                open_nodes.append((kind(tag, [], start, end), []))
                continue
            else:  # the end of the innermost open collection
                collection, items = open_nodes.pop()
                if isinstance(collection, yaml.MappingNode):  # keys and values alternate
                    collection.value = list(zip(items[::2], items[1::2], strict=True))
                else:
                    collection.value = items
                collection.end_mark = end
                node = collection
            if not open_nodes:
                return node
            open_nodes[-1][1].append(node)


def parse_yaml(text: str, source: str) -> list[Node]:
    """Return the root nodes of a YAML hierarchy, keeping line numbers for errors.

    Example:
        >>> [node.line for node in parse_yaml("a: [x, y]\\nb:\\n", "tree.yaml")]
        [1, 2]
    """
    check_invisible(text, source)
    loader = TreeLoader(text, source)
    try:
        document = loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}: " if mark is not None else f"{source}: "
        what = "; ".join(str(part) for part in (err.context, err.problem) if part)
        raise HierarchyError(f"{where}not valid YAML: {what or err}") from err
    except yaml.YAMLError as err:
        raise HierarchyError(f"{source}: not valid YAML: {err}") from err
    finally:
        loader.dispose()
    if document is None:
        raise HierarchyError(f"{source}: the hierarchy file is empty (no class names)")

    def children(path: list[Entry], entry: Entry) -> list[Entry]:
        name, line, value = entry
        entries = _entries(value, source)
        if not entries:
            raise HierarchyError(f"{source}:{line}: {name!r} has no children")
        return entries

    return build_tree(_entries(document, source), children)


def parse_json(text: str, source: str) -> list[Node]:
    """Return the root nodes of a JSON hierarchy (the YAML format's mappings and lists).

    The text must be JSON (errors name the line); it is then read as YAML, with every tab
    (in valid JSON, only ever whitespace between tokens) read as a space, so that the
    tree's errors name their lines too.

    Example:
        >>> [node.name for node in parse_json('{"a": ["x", "y"],\t"b": null}', "tree.json")]
        ['a', 'b']
    """
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        raise HierarchyError(f"{source}:{err.lineno}: not valid JSON: {err.msg}") from err
    except RecursionError:  # deeper than the json module reads: the YAML loader has no limit
        pass
    return parse_yaml(text.replace("\t", " "), source)


def _scalar(node: yaml.Node) -> str | None:
    """Return the text of a scalar node; None for a null or a non-scalar."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL:
        return None
    return str(node.value)


def _entries(node: yaml.Node, source: str) -> list[Entry]:
    """Return the entries of a YAML mapping (key: children or nothing) or list (names, mappings)."""
    if isinstance(node, yaml.MappingNode):
        return _mapping_entries(node, source)
    if isinstance(node, yaml.SequenceNode):
        entries: list[Entry] = []
        for item in node.value:
            line = item.start_mark.line + 1
            if isinstance(item, yaml.ScalarNode):
                name = _scalar(item)
                if name is None:
                    raise HierarchyError(f"{source}:{line}: empty list item")
                entries.append((name, line, None))
            elif isinstance(item, yaml.SequenceNode):
                raise HierarchyError(
                    f"{source}:{line}: a list item must be a class name or a mapping, not a list"
                )
            else:
                entries.extend(_mapping_entries(item, source))
        return entries
    line = node.start_mark.line + 1
    raise HierarchyError(f"{source}:{line}: expected a mapping or a list of class names")


def _mapping_entries(node: yaml.MappingNode, source: str) -> list[Entry]:
    """Return the entries of a YAML mapping: a null value is a leaf, a collection a group."""
    entries: list[Entry] = []
    for key, value in node.value:
        name = _scalar(key)
        line = key.start_mark.line + 1
        if name is None:
            raise HierarchyError(f"{source}:{line}: a class name must be a plain value")
        if isinstance(value, yaml.ScalarNode):
            if _scalar(value) is not None:
                raise HierarchyError(
                    f"{source}:{line}: {name!r} maps to {value.value!r}; a leaf maps to "
                    "nothing, a group to a mapping or a list"
                )
            value = None
        entries.append((name, line, value))
    return entries
