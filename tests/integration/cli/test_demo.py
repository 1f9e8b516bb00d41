"""`fgw demo` as the README runs it: simulators + gateway + a private broker, then a fire in zone 3."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e import watching
from tests.support import ROOT

pytestmark = pytest.mark.integration


async def test_demo_serves_the_example_site_and_a_fire_arrives(
    tmp_path: Path,
) -> None:
    out_path = tmp_path / "demo.out"
    with out_path.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", "--workdir", str(tmp_path / "demo")],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        port = None
        for _ in range(300):
            found = re.search(r"mqtt://127\.0\.0\.1:(\d+)", out_path.read_text())
            if found:
                port = int(found.group(1))
                break
            assert demo.poll() is None, out_path.read_text()
            await asyncio.sleep(0.05)
        assert port, out_path.read_text()
        banner = out_path.read_text()
        assert "mosquitto_sub" in banner and "fire-1 fire --zone 3" in banner
        site = tmp_path / "demo" / "site.yaml"
        async with watching(port, "fgw/riverside") as watcher:
            await watcher.wait_for(lambda: watcher.status == "online", timeout=20)
            inject = [sys.executable, "-m", "gateway.cli", "inject", str(site), "fire-1", "fire",
                      "--zone", "3"]  # fmt: skip
            result = await asyncio.to_thread(
                subprocess.run, inject, cwd=ROOT, capture_output=True, text=True, timeout=30
            )
            assert result.returncode == 0, result.stderr
            # how fast is measured by bench.fire_latency, not asserted here (noisy machines)
            alarm = await watcher.wait_alarm("fire-1", "fire_alarm", "active_unack", timeout=15)
            assert alarm["priority"] == "critical" and alarm["value"] == 4
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, out_path.read_text()
    assert "Traceback" not in out_path.read_text()
