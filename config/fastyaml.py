"""A quick way through a plain site file: libyaml's C composer for the structure, ruamel's rules for
the values, and line numbers looked up only when an issue asks for one.

ruamel's round-trip loader is written in Python and takes most of a second for a 1,000-device site,
which is most of the time `fgw run` needs before its first poll. libyaml (through PyYAML's C
binding) composes the same text into nodes that carry their line in about a twentieth of that.
libyaml resolves plain scalars by YAML 1.1 (`yes` is true, `010` is 8) where the gateway reads YAML
1.2, so every plain scalar is resolved and built again by ruamel's own 1.2 resolver and round-trip
constructor: the data is the data ruamel gives. Whatever this path does not reproduce exactly — tags,
anchors and aliases, merge keys, directives, duplicate keys, text libyaml refuses — returns None,
and the caller reads the file with ruamel as before (so its error messages stay ruamel's).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from config.errors import Loc

try:
    import yaml
    from yaml._yaml import CParser
except ImportError:  # PyYAML without libyaml: the ruamel path alone is used
    yaml = None
    CParser = object

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_BUILT = frozenset(
    "tag:yaml.org,2002:" + kind for kind in ("int", "float", "bool", "null", "timestamp")
)

_PLAIN = "?"
"""The tag the composer gives a plain scalar without an explicit tag: resolved later, by 1.2 rules."""

_UNSUPPORTED = re.compile(
    r"(?:^|[\s\[{,])(?:!(?:[\s\]},]|$)|&[^\s,\[\]{}])|^%|[\t\r\x85\u2028\u2029\ufeff]", re.M
)
"""The bare `!` tag (libyaml reports it like no tag at all), anchors (`&a`: an
anchored scalar is a subclass in ruamel; an alias needs one), directives, tabs and the line breaks
other than \\n and byte-order marks (libyaml and ruamel treat them differently). Any of them sends
the file to ruamel; a false alarm (`A &B` in a message) only costs time. Every other explicit tag
(`!!int`, `!local`, `!<…>`) is seen on its node and sends the file there too."""


class _Fallback(Exception):
    """The file uses something this path does not reproduce exactly."""


class _Scalars:
    """Plain scalars resolved and built exactly as ruamel's round-trip loader builds them."""

    def __init__(self) -> None:
        from ruamel.yaml import YAML
        from ruamel.yaml.nodes import ScalarNode

        loader = YAML(typ="rt")
        self._node = ScalarNode
        self._constructor = loader.constructor
        self._resolvers: dict[Any, list[tuple[str, Any]]] = loader.resolver.versioned_resolver
        self._builders: dict[str, Callable[..., Any]] = {}
        self._cache: dict[str, Any] = {}

    def plain(self, value: str) -> Any:
        """The value of a plain (unquoted) scalar, from the YAML 1.2 core schema."""
        if value in self._cache:
            return self._cache[value]
        tag = _STR
        for candidate, regexp in self._resolvers.get(value[0] if value else "", []):
            if regexp.match(value):
                tag = str(candidate)
                break
        if tag == _STR:
            result: Any = value
        elif tag in _BUILT:
            builder = self._builders.get(tag)
            if builder is None:
                builder = self._builders[tag] = self._constructor.yaml_constructors[tag]
            result = builder(self._constructor, self._node(tag, value))
        else:  # `<<` (merge) or `=` (value): ruamel's own handling
            raise _Fallback(tag)
        if result is None or type(result) in (str, bool, int):
            self._cache[value] = result  # immutable: safe to share between nodes
        return result


class NodePositions:
    """Line numbers read from libyaml's nodes, found only when an issue asks for one."""

    def __init__(self, root: Any, scalars: _Scalars) -> None:
        self._root = root
        self._scalars = scalars
        self._keys: dict[int, dict[Any, tuple[int, Any]]] = {}

    def _index(self, node: Any) -> dict[Any, tuple[int, Any]]:
        index = self._keys.get(id(node))
        if index is None:
            index = {
                self._scalars.plain(k.value) if k.tag == _PLAIN else k.value: (k.start_mark.line, v)
                for k, v in node.value
            }
            self._keys[id(node)] = index
        return index

    def line_of(self, loc: Loc) -> int:
        """The 1-based line of the deepest part of `loc` that exists in the file."""
        node = self._root
        line = 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                index = self._index(node)
                if part in index:
                    key_line, node = index[part]
                    line = key_line + 1
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and part < len(node.value)
            ):
                node = node.value[part]
                line = node.start_mark.line + 1
            # otherwise a location that is not in the data (a union tag, a model-level check)
        return line


class _Composer(CParser):  # type: ignore[misc]  # libyaml's C parser has no type information
    """libyaml's composer without PyYAML's YAML 1.1 resolver: a plain scalar without a tag is
    marked `_PLAIN`, so that an explicit tag (which keeps its own) is told apart."""

    def resolve(self, kind: type, value: str | None, implicit: Any) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP

    def descend_resolver(self, parent: Any, index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass


def load_fast(text: str) -> tuple[Any, NodePositions] | None:
    """`(data, positions)` for `text`, or None when ruamel must read it (see the module's doc)."""
    if "\r\n" in text:  # a file saved on Windows: YAML reads CRLF as one line break, as LF
        text = text.replace("\r\n", "\n")
    if yaml is None or _UNSUPPORTED.search(text):
        return None
    composer = _Composer(text)
    try:
        root = composer.get_single_node()
    except yaml.YAMLError:
        return None  # ruamel reads it again and words the error
    finally:
        composer.dispose()
    scalars = _Scalars()
    try:
        data = _build(root, scalars, set()) if root is not None else None
    except Exception:  # _Fallback, or a value ruamel refuses (2024-13-45): ruamel words it
        return None
    return data, NodePositions(root, scalars)


def _build(node: Any, scalars: _Scalars, seen: set[int]) -> Any:
    """Plain dicts, lists and values from a node tree (what `_plain` makes of ruamel's tree)."""
    if id(node) in seen:
        raise _Fallback("alias")  # libyaml hands an alias back as the anchored node itself
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _PLAIN:
            return scalars.plain(node.value)
        if node.tag != _STR or node.style == "":  # an explicit tag (`!!str 5` is plain and tagged)
            raise _Fallback("tag")
        return node.value
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _Fallback("tag")
        return [_build(item, scalars, seen) for item in node.value]
    if node.tag != _MAP:
        raise _Fallback("tag")
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = _build(key_node, scalars, seen)
        if not isinstance(key_node, yaml.ScalarNode) or key in result:
            raise _Fallback("key")  # complex or duplicate keys: ruamel words the error
        result[key] = _build(value_node, scalars, seen)
    if all(type(k) is str for k in result):
        return result
    return {k if isinstance(k, str) else str(k): v for k, v in result.items()}
