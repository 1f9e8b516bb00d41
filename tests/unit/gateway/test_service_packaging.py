"""Running as a service: the sd_notify protocol over a real UNIX datagram socket and the watchdog fed
only while healthy. `fgw run` saying READY=1 and STOPPING=1, and the systemd unit in `deploy/`:
tests/integration/cli/test_service_packaging.py.
"""

from __future__ import annotations

import asyncio
import configparser
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.sdnotify import SystemdNotifier, notify, watchdog_seconds
from tests.support import ROOT

UNIT = ROOT / "deploy" / "fgw.service"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def test_notify_sends_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert notify("READY=1\nSTATUS=up", {"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    assert not notify("READY=1", {})  # not started by systemd: nothing to do
    assert not notify("READY=1", {"NOTIFY_SOCKET": path + ".missing"})  # logged, never raised


def test_abstract_socket_address() -> None:
    name = f"fgw-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_watchdog_period_is_for_this_process_only() -> None:
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_seconds({}) is None


class FakeStatus:
    """Only what the notifier reads of the service's status: health()."""

    def __init__(self) -> None:
        self.state = "ok"

    def health(self) -> dict[str, Any]:
        checks = {"polling": {"status": self.state}}
        return {"status": self.state, "checks": checks}


class FakeContext:
    """Only what the notifier reads: the site's device count and the service's health()."""

    def __init__(self) -> None:
        self.status = FakeStatus()
        self.site = type("S", (), {"devices": {"a": 1, "b": 2}})()


async def test_the_watchdog_is_fed_only_while_not_unhealthy(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    sock.setblocking(False)
    loop = asyncio.get_running_loop()

    async def receive() -> str:
        return (await asyncio.wait_for(loop.sock_recv(sock, 4096), 10)).decode()

    context = FakeContext()
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"}
    notifier = SystemdNotifier(context, env)  # type: ignore[arg-type]
    task = asyncio.create_task(notifier.run(), name="test.notifier")
    try:
        assert (await receive()).startswith("READY=1\nSTATUS=polling 2 devices")
        assert await receive() == "WATCHDOG=1\nSTATUS=ok"
        context.status.state = "degraded"  # broker away: a restart would not help, keep feeding
        while (message := await receive()) != "WATCHDOG=1\nSTATUS=degraded":
            pass
        context.status.state = "unhealthy"
        while (message := await receive()).startswith("WATCHDOG=1"):
            pass
        assert message == "STATUS=unhealthy: polling"
        await asyncio.sleep(0.35)  # several watchdog periods (0.05 s) pass unfed
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
        context.status.state = "ok"
        assert await receive() == "WATCHDOG=1\nSTATUS=ok"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await notifier.close()
    assert await receive() == "STOPPING=1"


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_the_unit_runs_as_a_restarting_hardened_non_root_notify_service() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["WatchdogSec"]
    assert service["User"] not in ("", "root") and service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictNamespaces"):
        assert service[option] == "yes", option
    assert service["ProtectSystem"] == "strict" and service["CapabilityBoundingSet"] == ""
    assert service["ExecStart"].endswith("fgw run /etc/fgw/site.yaml")
