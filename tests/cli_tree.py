"""The `fgw` parser as a tree: every leaf subcommand, and an argument list that reaches its code.

Shared by the traceback sweep and the `--help` test, so a subcommand added later is swept and
checked without anyone listing it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from gateway.cli import build_parser

OPTION_VALUES = {"--month": "2026-11", "--since": "7d"}
"""Values for required options that must parse; any other required option gets `x`."""

POSITIONAL_VALUES = {"name": "alice", "user": "alice"}
"""Values for positionals that must be well-formed; any other gets `1`."""


def leaves(
    parser: argparse.ArgumentParser | None = None, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable subcommand: the words that choose it and its parser."""
    parser = parser or build_parser()
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield words, parser
        return
    for group in groups:
        for name, child in group.choices.items():
            yield from leaves(child, (*words, name))


def argv_for(words: tuple[str, ...], parser: argparse.ArgumentParser, site: str) -> list[str]:
    """An argument list for the subcommand: `site` for SITE, a plausible word for the rest."""
    argv = list(words)
    for action in parser._actions:
        if action.option_strings:
            if action.required:
                argv.append(action.option_strings[-1])
                value = OPTION_VALUES.get(action.option_strings[-1], "x")
                argv.append(str(action.choices[0]) if action.choices else value)
            continue
        if isinstance(action, argparse._SubParsersAction) or action.nargs in ("*", "?"):
            continue
        if action.dest == "site":
            argv.append(site)
        elif action.choices:
            argv.append(str(next(iter(action.choices))))
        else:
            argv.append(POSITIONAL_VALUES.get(action.dest, "1"))
    return argv
