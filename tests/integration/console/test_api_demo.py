"""`fgw demo` serves the console: the banner names its URL and a login that works over real HTTP."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT

pytestmark = pytest.mark.integration


async def test_demo_prints_a_console_url_and_a_login_that_works(tmp_path: Path) -> None:
    out_path = tmp_path / "demo.out"
    workdir = tmp_path / "demo"
    with out_path.open("wb") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "demo", "--workdir", str(workdir)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        pattern = re.compile(r"(http://127\.0\.0\.1:\d+)/\n\s+login: (\S+)\s+password: (\S+)")
        found = None
        async with asyncio.timeout(30):
            while not (found := pattern.search(out_path.read_text())):
                assert demo.poll() is None, out_path.read_text()
                await asyncio.sleep(0.05)
        url, name, password = found.groups()
        assert (workdir / "demo-login.txt").stat().st_mode & 0o077 == 0
        async with httpx.AsyncClient(base_url=url, timeout=10) as c:
            async with asyncio.timeout(20):
                while True:
                    try:
                        page = await c.get("/")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
            assert page.status_code == 200 and "/static/console.js" in page.text
            login = await c.post("/api/v1/login", json={"name": name, "password": password})
            assert login.status_code == 200 and login.json()["role"] == "engineer"
            devices = (await c.get("/api/v1/devices")).json()["devices"]
            assert {"pump-1", "fire-1"} <= {d["id"] for d in devices}
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(20)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, out_path.read_text()
