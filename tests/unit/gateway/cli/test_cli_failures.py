"""No traceback for an expected failure of any `fgw` command (issue 16.3).

Every subcommand (walked from the parser, so new ones are swept too) meets a missing site file, a
database another process holds, a broker that is down, a simulator that is absent and a port in
use. Each must end with one line saying what failed and what to check, and a non-zero exit — or,
for the long-running service, keep running and say so once in its log. The commands run as
processes: tests/integration/cli/test_cli_failures.py.
"""

from __future__ import annotations

import argparse
import errno
import sqlite3
from pathlib import Path

import pytest

from gateway import cli
from gateway.commands.failures import CommandFailure, describe
from tests.cli_tree import argv_for, leaves


def sweep_argv(words: tuple[str, ...], parser: argparse.ArgumentParser, site: Path) -> list[str]:
    argv = argv_for(words, parser, str(site))
    options = {o for a in parser._actions for o in a.option_strings}
    if str(site) not in argv and "--site" in options:  # fgw demo takes the site as an option
        argv += ["--site", str(site)]
    if "--workdir" in options:
        argv += ["--workdir", str(site.parent / "work")]
    if "--mqtt-wait" in options:
        argv += ["--mqtt-wait", "0.3"]
    if "--once" in options:
        argv.append("--once")
    return argv


def one_line_failure(stderr: str, *needles: str) -> str:
    """The failure's line: the last of stderr, from `fgw …`, naming what to check."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert lines, "nothing said on stderr"
    last = lines[-1]
    for needle in needles:
        assert needle in last, (needle, stderr)
    return last


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`fgw ARGV` in this process; an exception escaping `main` is a traceback for the user."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------ without real parts


def test_every_command_with_a_missing_site_file_says_which_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.logs.setup_logging", lambda *a, **k: None)
    missing = tmp_path / "no-such-site.yaml"
    swept = []
    for words, parser in leaves():
        argv = sweep_argv(words, parser, missing)
        code, stderr = run_main(argv, capsys)
        assert code != 0, argv
        one_line_failure(stderr, "no-such-site.yaml")
        swept.append(" ".join(words))
    assert {"run", "inject", "demo", "report maintenance", "user add"} <= set(swept)


# ------------------------------------------------------------------------------ the classifier


def test_expected_failures_are_described_and_bugs_are_not() -> None:
    assert describe(CommandFailure("broker down")) == "broker down"
    assert "busy" in (describe(sqlite3.OperationalError("database is locked")) or "")
    assert "in use" in (describe(OSError(errno.EADDRINUSE, "Address already in use")) or "")
    assert "storage.path" in (describe(OSError(errno.ENOSPC, "No space left")) or "")
    assert describe(ExceptionGroup("g", [TimeoutError("x"), OSError(errno.ECONNREFUSED, "r")]))
    stored = describe(FileExistsError(errno.EEXIST, "File exists", "/srv/fgw/state"))
    assert stored and "/srv/fgw/state" in stored and "storage.path" in stored
    assert describe(KeyError("a bug")) is None
    assert describe(ExceptionGroup("g", [OSError("fine"), ValueError("a bug")])) is None
