"""The `fgw` command line as a user runs it: real processes, real exit codes, no tracebacks."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from config.site import load_site
from tests.e2e import watching, write_site
from tests.support import ROOT, Broker

FGW = [sys.executable, "-m", "gateway.cli"]


def fgw(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FGW, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


def test_check_accepts_the_example_site() -> None:
    result = fgw("check", "examples/riverside.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "11 devices" in result.stdout


def test_check_lists_every_error_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "site: {id: x}\nmodbus:\n  - {id: b, transport: tcp, host: 127.0.0.1, port: 502}\n"
        "devices:\n  - {id: p, template: booster_pump, modbus: {bus: b, unit: 0}}\n"
        "  - {id: q, template: lift, modbus: {bus: b, unit: 2}, pol: 1s}\n"
    )
    result = fgw("check", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{bad}:5: devices[0].modbus.unit: must be >= 1, got 0"
    assert lines[1] == f"{bad}:6: devices[1].pol: unknown field (did you mean 'poll'?)"
    assert "Traceback" not in result.stderr


def test_check_missing_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    result = fgw("check", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1 and "cannot read" in result.stderr
    assert "Traceback" not in result.stderr


def test_inject_without_a_simulator_says_so(broker: Broker, tmp_path: Path) -> None:
    site = write_site(tmp_path, broker.port)
    result = fgw("inject", str(site), "fire-1", "fire", "--zone", "3", timeout=30)
    assert result.returncode == 1 and "is `fgw sim` running?" in result.stderr


def test_inject_refuses_unknown_device_and_bad_set(tmp_path: Path, broker: Broker) -> None:
    site = write_site(tmp_path, broker.port)
    assert "unknown device" in fgw("inject", str(site), "pump-9", "trip").stderr
    result = fgw("inject", str(site), "pump-1", "set", "no_such_point=3")
    assert result.returncode == 2 and "POINT=VALUE" in result.stderr


@pytest.mark.integration
async def test_sim_inject_and_run_as_processes(broker: Broker, tmp_path: Path) -> None:
    """`fgw sim` + `fgw run` + `fgw inject`, as separate processes, as in the README's tour."""
    site = write_site(tmp_path, broker.port)
    sim_log, run_log = tmp_path / "sim.log", tmp_path / "run.log"
    with sim_log.open("wb") as out:
        sim = subprocess.Popen([*FGW, "sim", str(site), "--seed", "3"], cwd=ROOT, stderr=out)
    with run_log.open("wb") as out:
        run = subprocess.Popen(
            [*FGW, "run", str(site), "--log-format", "json"], cwd=ROOT, stderr=out
        )
    try:
        prefix = load_site(site).topic_prefix
        async with watching(broker.port, prefix) as watcher:
            await watcher.wait_for(lambda: watcher.status == "online", timeout=20)
            for _ in range(50):  # the simulator may still be starting
                injected = await asyncio.to_thread(
                    fgw, "inject", str(site), "fire-1", "fire", "--zone", "3"
                )
                if injected.returncode == 0:
                    break
                await asyncio.sleep(0.2)
            assert injected.returncode == 0, injected.stderr
            alarm = await watcher.wait_alarm("fire-1", "fire_alarm", "active_unack", timeout=10)
            assert alarm["priority"] == "critical"
            run.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(run.wait, 20) == 0
            await watcher.wait_for(lambda: watcher.status == "offline", timeout=10)
    finally:
        for process in (run, sim):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    log = run_log.read_text()
    assert '"msg": "gateway stopped"' in log and "Traceback" not in log
