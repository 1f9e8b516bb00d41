"""What the benchmarks share: private processes on loopback, /proc sampling, and figures.

Every bench runs its real parts (Mosquitto, `fgw sim`, VictoriaMetrics) as child processes on free
loopback ports in a temporary folder, and stops them on the way out, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from gateway.demo import free_port, start_broker

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FGW = [sys.executable, "-m", "gateway.cli"]

__all__ = ["FGW", "free_port", "start_broker"]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Terminate a child we started, and kill it if it does not go."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def broker(folder: Path) -> Iterator[int]:
    """A private Mosquitto; yields its port."""
    port = free_port()
    process = start_broker(folder, port)
    try:
        yield port
    finally:
        stop(process, 5)


@contextlib.contextmanager
def simulators(site: Path, modbus_ports: Sequence[int] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """`fgw sim SITE` in its own process (its own core: the Python server is the slow side)."""
    log = (site.parent / "sim.log").open("wb")
    process = subprocess.Popen([*FGW, "sim", str(site), "--seed", "1"], stderr=log, stdout=log)
    try:
        for port in modbus_ports:
            wait_for_port(port)
        yield process
    finally:
        stop(process)
        log.close()


@contextlib.contextmanager
def victoria_metrics(folder: Path) -> Iterator[int]:
    """Debian's `victoria-metrics` on a free port (the InfluxDB v2 write API stand-in)."""
    binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
    if not Path(binary).exists():
        raise SystemExit("victoria-metrics is missing: run ./scripts/setup.sh")
    port = free_port()
    log = (folder / "vm.log").open("wb")
    process = subprocess.Popen(
        [binary, f"-httpListenAddr=127.0.0.1:{port}", f"-storageDataPath={folder / 'vm'}",
         "-search.latencyOffset=0s"],
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield port
    finally:
        stop(process, 10)
        log.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def write_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage (`write_bytes` of /proc/PID/io: what
    reached the block layer, page-cache write-back and fsyncs included)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def cancelled_write_bytes(pid: int) -> int:
    """Bytes of `write_bytes` that never reached storage: dirty pages of files truncated or deleted
    before write-back (`cancelled_write_bytes` of /proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("cancelled_write_bytes:"):
            return int(line.split()[1])
    return 0


def stop_counting_writes(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int | None:
    """SIGTERM a child we started and return its `write_bytes` at exit (read while it is a zombie,
    so its last commit and checkpoint count); None if it had to be killed."""
    if process.poll() is not None:
        return None
    process.terminate()
    deadline = time.monotonic() + timeout
    written = None
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state == "Z":
            written = write_bytes(process.pid)
            break
        time.sleep(0.02)
    stop(process)
    return written


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_average() -> str:
    """The machine's 1-minute load, printed with every figure: others may share the box."""
    return f"{os.getloadavg()[0]:.2f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of the values, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def header(name: str) -> None:
    print(f"# bench.{name} — {time.strftime('%Y-%m-%d %H:%M')}, load {load_average()}", flush=True)
