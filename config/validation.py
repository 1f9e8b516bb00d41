"""Turning pydantic's errors into messages a building engineer can act on."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from config.errors import ConfigIssue, Loc
from config.models import POINT_TAGS
from config.yamlsource import YamlDocument


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    return tuple(p for p in loc if p not in POINT_TAGS and not str(p).startswith("function-"))


def _known_fields(model: type[BaseModel] | None, loc: Loc) -> list[str]:
    """Field names allowed where an unknown key was found, to suggest the one meant."""
    if model is None:
        return []
    from config import models

    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", {})
        by_alias = {f.alias or n: f for n, f in fields.items()}
        info = by_alias.get(part)
        if info is None:
            # inside a dict of points: the next level is a point model
            current = models.ModbusPoint if part in ("points",) else None
            continue
        annotation = info.annotation
        current = _model_in(annotation)
    if current is None:
        return []
    return [f.alias or n for n, f in current.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _message(error: Any, model: type[BaseModel] | None, loc: Loc) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    given = error.get("input")
    if kind == "extra_forbidden":
        known = _known_fields(model, loc)
        close = difflib.get_close_matches(str(loc[-1]) if loc else "", known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
              "less_than": "<"}[kind]  # fmt: skip
        bound = next(iter(ctx.values()), "?")
        return f"must be {op} {bound}, got {given!r}"
    if kind == "literal_error":
        return f"{given!r} is not one of {ctx.get('expected', '')}"
    if kind == "string_pattern_mismatch":
        return f"{given!r} is not a valid id (letters, digits, _ and -, starting with a letter)"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if given is not None and kind.endswith(("_type", "_parsing")):
        message += f", got {given!r}"
    return message


def issues_from_validation(
    doc: YamlDocument, exc: ValidationError, model: type[BaseModel] | None = None
) -> list[ConfigIssue]:
    """One `ConfigIssue` per pydantic error, each with its file line."""
    issues = []
    for error in exc.errors():
        loc = _clean_loc(error["loc"])
        issues.append(doc.issue(loc, _message(error, model, loc)))
    return issues
