"""Reading YAML while keeping where every key and item came from.

ruamel.yaml's round-trip loader records line and column of every mapping key and sequence item;
we use that to turn a pydantic error location into a line of the user's file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from gateway.config.errors import ConfigIssue, Loc, SiteError


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: plain Python data plus a way back to line numbers."""

    path: str
    tree: Any  # ruamel's CommentedMap/CommentedSeq, which carry positions
    data: Any  # the same content as plain dicts and lists, for validation

    def line_of(self, loc: Loc) -> int:
        """The 1-based line of the deepest part of `loc` that exists in the file."""
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

    def issue(self, loc: Loc, message: str, *, warning: bool = False) -> ConfigIssue:
        return ConfigIssue(self.path, self.line_of(loc), loc, message, warning)


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
    return YamlDocument(name, tree, _plain(tree))
