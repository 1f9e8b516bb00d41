"""`fgw run` in-process: the garbage collector is off only while the service starts.

The command line as a user runs it (real processes): tests/integration/cli/test_cli.py.
"""

from __future__ import annotations

import asyncio

import pytest


def test_run_keeps_the_collector_off_only_for_the_synchronous_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import argparse
    import gc

    import gateway.cli
    import gateway.logs
    import gateway.service

    seen: list[tuple[str, bool]] = []

    def load(path: str) -> object:
        seen.append(("load", gc.isenabled()))
        return object()

    async def run_service(site: object) -> int:
        seen.append(("built", gc.isenabled()))  # Gateway(site) is built here, synchronously
        await asyncio.sleep(0)
        seen.append(("running", gc.isenabled()))
        return 0

    monkeypatch.setattr(gateway.cli, "_load", load)
    monkeypatch.setattr(gateway.logs, "setup_logging", lambda *args: None)
    monkeypatch.setattr(gateway.service, "run_service", run_service)
    assert gc.isenabled()
    args = argparse.Namespace(site="s.yaml", log_level="info", log_format="text")
    assert gateway.cli.cmd_run(args) == 0
    assert seen == [("load", False), ("built", False), ("running", True)]
    assert gc.isenabled()
