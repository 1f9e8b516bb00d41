"""`fgw … --help` describes every subcommand and every argument (issue 16.7).

The parser is walked as a tree, so a subcommand or an argument added later without a description
fails here rather than on an installer's screen.
"""

from __future__ import annotations

import argparse

import pytest

from gateway.cli import build_parser, main
from tests.cli_tree import leaves


def _undescribed(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        if isinstance(action, argparse._SubParsersAction):
            described = {c.dest for c in action._choices_actions if c.help}
            missing += [f"{name} {choice}" for choice in action.choices if choice not in described]
            continue
        if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
            missing.append(name)
    return missing


def _every_parser(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _every_parser(child)
    return found


def test_every_argument_of_every_subcommand_has_a_description() -> None:
    missing = [
        f"{prog}: {name}"
        for prog, parser in _every_parser(build_parser())
        for name in _undescribed(parser)
    ]
    assert missing == [], "arguments without help=: " + "; ".join(missing)


@pytest.mark.parametrize("words", [w for w, _ in leaves()], ids=" ".join)
def test_help_prints_and_exits_zero(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: fgw " + " ".join(words))
    assert "options:" in text


def test_the_check_finds_an_argument_without_help() -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("site", help="the site file")
    parser.add_argument("--quiet", action="store_true")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("go", help="go")
    sub.add_parser("stay")
    assert _undescribed(parser) == ["--quiet", "command stay"]
