"""Reading YAML while keeping where every key and item came from.

A pydantic error location is turned into a line of the user's file. Plain files go through
`fastyaml` (libyaml composes, line numbers looked up only when an issue needs one); anything else
through ruamel.yaml's round-trip loader, which records line and column of every mapping key and
sequence item and words YAML errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from config.errors import ConfigIssue, Loc, SiteError
from config.fastyaml import load_fast


class Positions(Protocol):
    """Where each part of a document is in its file."""

    def line_of(self, loc: Loc) -> int:
        """The 1-based line of the deepest part of `loc` that exists in the file."""
        ...


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: plain Python data plus a way back to line numbers."""

    path: str
    positions: Positions
    data: Any  # plain dicts, lists and scalars, for validation

    def line_of(self, loc: Loc) -> int:
        """The 1-based line of the deepest part of `loc` that exists in the file."""
        return self.positions.line_of(loc)

    def issue(self, loc: Loc, message: str, *, warning: bool = False) -> ConfigIssue:
        return ConfigIssue(self.path, self.line_of(loc), loc, message, warning)


class RuamelPositions:
    """Line numbers from ruamel's CommentedMap/CommentedSeq, which carry them."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree

    def line_of(self, loc: Loc) -> int:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        node = self.tree
        line = 1
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                continue  # a location that is not in the data (a union tag, a model-level check)
        return line


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def load_yaml(path: str | Path, text: str | None = None) -> YamlDocument:
    """Parse `path` (or `text`, named as `path`) keeping positions.

    Raises:
        SiteError: the file cannot be read or is not valid YAML; the issue names the line.
    """
    name = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SiteError([ConfigIssue(name, None, (), f"cannot read: {exc.strerror}")]) from exc
        except UnicodeDecodeError as exc:
            raise SiteError([ConfigIssue(name, None, (), "not UTF-8 text")]) from exc
    fast = load_fast(text)
    if fast is not None:
        data, positions = fast
        return YamlDocument(name, positions, {} if data is None else data)
    return load_yaml_ruamel(name, text)


def load_yaml_ruamel(name: str, text: str) -> YamlDocument:
    """The round-trip path: every YAML feature, and ruamel's wording of YAML errors."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import MarkedYAMLError

    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SiteError([ConfigIssue(name, line, (), f"YAML: {problem}")]) from exc
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. duplicate keys wording)
        raise SiteError([ConfigIssue(name, None, (), f"YAML: {exc}")]) from exc
    if tree is None:
        tree = CommentedMap()
    return YamlDocument(name, RuamelPositions(tree), _plain(tree))
