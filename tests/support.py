"""Test support: free loopback ports and a real Mosquitto that tests start and stop themselves.

Never a public broker, never a hard-coded port: each run starts its own broker on 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.guard import require_integration

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

FULL = bool(os.environ.get("CI"))
"""CI runs hypothesis' full profile ("ci"); anywhere else the fast one (tests/conftest.py)."""

FAST_SHARE = 10
"""The fast profile runs a tenth of a property's examples (at least `FAST_FLOOR`)."""

FAST_FLOOR = 2

ROOT = Path(__file__).resolve().parent.parent
"""The repository: examples/, docs/, deploy/ and scripts/ are found from here, wherever a test lives."""

CASES = ROOT / "tests" / "cases"
"""The golden site-file cases: `<name>/{site.yaml, expected.jsonl | check.err}`."""


def examples(full: int) -> int:
    """A property's `max_examples`: `full` in CI, a tenth of it (at least 2) in the fast profile."""
    return full if FULL else max(FAST_FLOOR, full // FAST_SHARE)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, below the kernel's ephemeral range.

    Not `free_port()`: a client connecting to an unused port inside that range can be given the
    same port as its own source and connect to itself (TCP simultaneous open), and then reads its
    own CONNECT instead of a refusal."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for port in random.sample(range(20000, low), 500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no closed port below the ephemeral range")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Broker:
    """A private Mosquitto on loopback that a test may stop and start again on the same port."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"

    @property
    def config(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def start(self) -> None:
        require_integration("Mosquitto")
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        with (self.workdir / "mosquitto.log").open("ab") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stderr=log, stdout=log
            )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
