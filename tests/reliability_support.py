"""Support for the reliability tests: a real VictoriaMetrics (InfluxDB v2 write API stand-in) on a
free loopback port, and killing a broker the hard way.

VictoriaMetrics names series `measurement_field` and turns tags into labels; data is readable about
0.6 s after a write, so tests poll `/api/v1/export` for a condition instead of sleeping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import Broker, wait_for_port

VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


def need_victoria() -> None:
    if not Path(VICTORIA).exists():
        pytest.fail("victoria-metrics is missing: run scripts/setup.sh (Debian package)")


@dataclass
class Victoria:
    """A VictoriaMetrics on 127.0.0.1:port keeping its data in `workdir` across restarts."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        need_victoria()
        log = (self.workdir / "victoria.log").open("ab")
        self.process = subprocess.Popen(
            [
                VICTORIA,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.workdir / 'data'}",
                "-search.latencyOffset=0s",
                "-retentionPeriod=100y",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        wait_for_port(self.port, timeout=20)

    def stop(self) -> None:
        """A graceful stop: VictoriaMetrics flushes what it accepted (the outage is ours to test)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def export(self, match: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"match[]": match})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=10) as answer:
            text = answer.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def samples(self, match: str) -> dict[tuple[str, str], dict[int, float]]:
        """`{(series name, device): {timestamp ms: value}}` of every series matching."""
        out: dict[tuple[str, str], dict[int, float]] = {}
        for series in self.export(match):
            key = (series["metric"]["__name__"], series["metric"].get("device", ""))
            out.setdefault(key, {}).update(zip(series["timestamps"], series["values"], strict=True))
        return out


def kill_broker(broker: Broker) -> None:
    """SIGKILL: no clean disconnect, no last words — as a crashed or unplugged broker."""
    if broker.process is not None:
        broker.process.kill()
        broker.process.wait()
        broker.process = None


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll a condition (for things outside the event loop, e.g. an HTTP export)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(interval)
