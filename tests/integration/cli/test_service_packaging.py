"""Running as a service for real: `fgw run` says READY=1 and STOPPING=1 over sd_notify, and
systemd accepts the unit in `deploy/`.

The sd_notify protocol and the watchdog: tests/unit/gateway/test_service_packaging.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support import Broker
from tests.unit.gateway.test_service_packaging import UNIT, listener  # noqa: F401 - fixtures


def test_fgw_run_says_ready_and_stopping(
    broker: Broker,
    tmp_path: Path,
    listener: tuple[socket.socket, str],  # noqa: F811 - the fixture
) -> None:
    sock, path = listener
    site = tmp_path / "site.yaml"
    site.write_text(
        f"site: {{id: sd-{uuid.uuid4().hex[:6]}}}\nstorage: {{path: ./state}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
        "devices:\n  - {id: d, mqtt: {topic: x}, points: {v: {topic: v}}}\n"
    )
    env = {**os.environ, "NOTIFY_SOCKET": path}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", str(site)],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert sock.recv(4096).startswith(b"READY=1")
        proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096) == b"STOPPING=1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("/opt/fgw/bin/fgw", shutil.which("true") or "/bin/true")
    copy = tmp_path / "fgw.service"
    copy.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in done.stderr.splitlines() if "fgw.service" in line]
    assert done.returncode == 0 and problems == [], done.stderr
