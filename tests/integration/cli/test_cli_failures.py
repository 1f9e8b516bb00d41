"""No traceback for an expected failure of an `fgw` command run as a process (issue 16.3): a
database another process holds, a broker that is down, a simulator that is absent, a port in use.

The sweep of every subcommand in-process, and its helpers: tests/unit/gateway/cli/test_cli_failures.py.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli_tree import leaves
from tests.support import ROOT, Broker, closed_port
from tests.unit.gateway.cli.test_cli_failures import one_line_failure, run_main, sweep_argv

FGW = [sys.executable, "-m", "gateway.cli"]


SITE = """
site: {{id: failing}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}
console: {{listen: 127.0.0.1:{console_port}}}
modbus:
  - {{id: plant, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 200ms}}
devices:
  - {{id: pump-1, template: booster_pump, modbus: {{bus: plant, unit: 1}}}}
  - {{id: door-lobby, template: access_door, mqtt: {{topic: doors/lobby}}}}
"""


def write_site(folder: Path, *, mqtt_port: int, modbus_port: int, console_port: int) -> Path:
    path = folder / "site.yaml"
    path.write_text(
        SITE.format(mqtt_port=mqtt_port, modbus_port=modbus_port, console_port=console_port)
    )
    return path


def test_commands_with_a_file_where_storage_should_be_say_to_check_storage_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = write_site(tmp_path, mqtt_port=closed_port(), modbus_port=closed_port(), console_port=1)
    (tmp_path / "state").write_text("not a folder")
    for words, parser in leaves():
        if words[0] in ("check", "poll", "sim", "inject", "demo", "run"):
            continue  # no storage (run: below, as a process)
        code, stderr = run_main(sweep_argv(words, parser, site), capsys)
        assert code != 0, words
        one_line_failure(stderr, str(tmp_path / "state"))
    result = subprocess.run(
        [*FGW, "run", str(site)], capture_output=True, text=True, cwd=ROOT, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1
    one_line_failure(result.stderr, "fgw run:", "storage.path")


def test_commands_on_a_locked_database_say_it_is_busy(tmp_path: Path) -> None:
    """Another process holds the write lock: writers wait 5 s, then say so in one line."""
    site = write_site(
        tmp_path, mqtt_port=closed_port(), modbus_port=closed_port(), console_port=closed_port()
    )
    created = subprocess.run(
        [*FGW, "user", "add", str(site), "alice", "--role", "engineer"],
        input="long enough password\n", capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    holders = []
    for name in ("gateway.sqlite3", "accounts.sqlite3"):  # the journal and tickets; the accounts
        holder = sqlite3.connect(tmp_path / "state" / name, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        holders.append(holder)
    try:
        processes = {}
        for words, parser in leaves():
            if words[0] in ("check", "poll", "sim", "inject", "demo"):
                continue  # no database
            argv = sweep_argv(words, parser, site)
            processes[" ".join(words)] = subprocess.Popen(
                [*FGW, *argv], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
        results = {
            name: process.communicate("another long password\n", timeout=60)
            for name, process in processes.items()
        }
        codes = {name: processes[name].returncode for name in processes}
    finally:
        for holder in holders:
            holder.rollback()
            holder.close()
    for name, (_, stderr) in results.items():
        assert "Traceback" not in stderr, (name, stderr)
        if codes[name] != 0:
            one_line_failure(stderr, "fgw")
    must_fail = {"run", "user add", "user passwd", "token create", "report alarms"}
    for name in must_fail:
        assert codes[name] != 0, name
        one_line_failure(results[name][1], f"fgw {name}:", "database is busy", "another process")


def test_inject_with_the_broker_down_names_the_broker(tmp_path: Path) -> None:
    port = closed_port()
    site = write_site(tmp_path, mqtt_port=port, modbus_port=closed_port(), console_port=1)
    result = subprocess.run(
        [*FGW, "inject", str(site), "pump-1", "trip"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    one_line_failure(result.stderr, f"127.0.0.1:{port}", "Mosquitto", "mqtt:")


def test_poll_with_nothing_answering_says_what_is_silent(tmp_path: Path) -> None:
    port = closed_port()
    site = write_site(tmp_path, mqtt_port=port, modbus_port=closed_port(), console_port=1)
    result = subprocess.run(
        [*FGW, "poll", str(site), "--once", "--mqtt-wait", "0.3"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    one_line_failure(result.stderr, "no answer from", "pump-1", "door-lobby")
    assert f"MQTT broker 127.0.0.1:{port} not reachable" in result.stderr


def test_sim_with_its_modbus_port_in_use_names_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        site = write_site(tmp_path, mqtt_port=closed_port(), modbus_port=port, console_port=1)
        result = subprocess.run(
            [*FGW, "sim", str(site)], capture_output=True, text=True, cwd=ROOT, timeout=60,
            check=False,
        )  # fmt: skip
    assert result.returncode == 1
    one_line_failure(result.stderr, "fgw sim:", f"127.0.0.1:{port}", "in use")


def test_run_with_the_broker_down_and_its_console_port_taken_keeps_serving(
    tmp_path: Path,
) -> None:
    """The service is not a one-shot command: it says what is wrong once and keeps going."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        console = taken.getsockname()[1]
        site = write_site(
            tmp_path, mqtt_port=closed_port(), modbus_port=closed_port(), console_port=console
        )
        log = tmp_path / "run.log"
        with log.open("wb") as out:
            run = subprocess.Popen(
                [*FGW, "run", str(site), "--log-format", "text"], cwd=ROOT, stderr=out
            )
        try:
            deadline = time.monotonic() + 60
            said = ("cannot listen on", "broker 127.0.0.1")  # two tasks: either may log first
            while not all(w in log.read_text() for w in said) and time.monotonic() < deadline:
                assert run.poll() is None, log.read_text()
                time.sleep(0.1)
            run.terminate()
            assert run.wait(30) == 0
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    text = log.read_text()
    assert "Traceback" not in text, text
    assert f"cannot listen on 127.0.0.1:{console}" in text
    assert "broker 127.0.0.1" in text


@pytest.mark.integration
def test_inject_with_no_simulator_says_to_start_one(broker: Broker, tmp_path: Path) -> None:
    site = write_site(tmp_path, mqtt_port=broker.port, modbus_port=closed_port(), console_port=1)
    result = subprocess.run(
        [*FGW, "inject", str(site), "pump-1", "trip"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    one_line_failure(result.stderr, "no simulator answered", "fgw sim")
