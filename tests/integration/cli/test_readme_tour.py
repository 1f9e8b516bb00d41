"""The README's tour, as written, against the demo's stack: `fgw demo` (its private Mosquitto, the
simulators, the gateway) in a fresh folder, then every command of the tour's `sh` blocks in order.

The commands are read from README.md (the fenced `sh` blocks under "## A short tour"), so the README
and this test cannot drift apart: only the demo's folder and broker port are put in for
`var/demo/site.yaml` and `PORT`. The ticket numbers the README uses are checked against the ids the
commands print, never assumed. A command marked `# refused` must exit 1, every other one 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import ROOT

README = ROOT / "README.md"
FGW = ROOT / ".venv" / "bin" / "fgw"
INVOCATION = ".venv/bin/fgw"
DEMO_SITE = "var/demo/site.yaml"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def tour_commands(text: str) -> list[str]:
    """Every command line of the `sh` blocks of the README's "A short tour" section, in order."""
    section = re.search(r"^## A short tour\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md has no '## A short tour' section"
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_tour_uses_one_invocation_and_the_demo_site() -> None:
    commands = tour_commands(README.read_text("utf-8"))
    assert commands, "the tour has no commands"
    for line in commands:
        first = line.split()[0]
        assert first in (INVOCATION, "mosquitto_sub"), f"not {INVOCATION}: {line}"
        if first == INVOCATION:
            assert DEMO_SITE in line, line


@dataclass
class Demo:
    process: subprocess.Popen[str]
    site: Path
    port: int
    output: list[str] = field(default_factory=list)


def read_until(process: subprocess.Popen[str], lines: list[str], done: Callable[[], bool]) -> None:
    """Collect the process's output lines (a reader thread) until `done()`, or fail after 90 s."""
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for line in iter(stdout.readline, ""):
            lines.append(line)

    threading.Thread(target=read, name="readme-tour.demo-output", daemon=True).start()
    deadline = time.monotonic() + 90
    while not done():
        assert process.poll() is None, "the demo stopped:\n" + "".join(lines)
        assert time.monotonic() < deadline, "the demo did not start:\n" + "".join(lines)
        time.sleep(0.1)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    workdir = tmp_path / "demo"
    process = subprocess.Popen(
        [str(FGW), "demo", "--workdir", str(workdir)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        read_until(process, lines, lambda: any("login:" in line for line in lines))
        text = "".join(lines)
        site = re.search(r"site file : (\S+)", text)
        port = re.search(r"broker +: mqtt://127\.0\.0\.1:(\d+)", text)
        assert site and port, text
        yield Demo(process, Path(site.group(1)), int(port.group(1)), lines)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Watcher:
    """The tour's `mosquitto_sub`, running in the background; its lines read as they arrive."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.out = cwd / "mosquitto_sub.out"
        self.file = self.out.open("w")
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + command], cwd=cwd, stdout=self.file, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        return self.out.read_text("utf-8", errors="replace")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.file.close()


def wait_for(what: str, probe: Callable[[], object], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}"
        time.sleep(0.25)


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def tickets(site: Path, cwd: Path) -> list[dict[str, object]]:
    result = run(f"{FGW} tickets list {site} --json", cwd)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def ticket_of(site: Path, cwd: Path, device: str) -> dict[str, object] | None:
    return next((t for t in tickets(site, cwd) if t["device"] == device), None)


def incident_of(site: Path, cwd: Path, playbook: str) -> dict[str, object] | None:
    """The open (real) incident of `playbook`, from `fgw incidents list --json`."""
    result = run(f"{FGW} incidents list {site} --json", cwd)
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return next((i for i in found if i["playbook"] == playbook and not i["drill"]), None)


def retained_alarm(watcher: Watcher, alarm: str) -> dict[str, object] | None:
    """The last retained payload of `fgw/riverside/alarms/{device}/{rule}` the watcher saw."""
    device, rule = alarm.split(".")
    found = None
    for line in watcher.text().splitlines():
        topic, _, payload = line.partition(" ")
        if topic == f"fgw/riverside/alarms/{device}/{rule}" and payload.startswith("{"):
            found = json.loads(payload)
    return found


def test_the_readme_tour_runs_as_written(demo: Demo, tmp_path: Path) -> None:
    readme = README.read_text("utf-8")
    commands = tour_commands(readme)
    cwd = tmp_path / "user"
    cwd.mkdir()
    watcher: Watcher | None = None
    ids: dict[str, int] = {}
    started = time.monotonic()
    try:
        for line in commands:
            command = line.replace("PORT", str(demo.port)).replace(DEMO_SITE, str(demo.site))
            command = command.replace(INVOCATION, str(FGW))
            if line.startswith("mosquitto_sub"):
                watcher = Watcher(command + " -t 'fgw/riverside/status'", cwd)
                wait_for(
                    "the gateway online",
                    lambda w=watcher: "fgw/riverside/status online" in w.text(),
                )
                continue
            assert watcher is not None, "the tour watches before it injects"
            before(line, demo, cwd, watcher, ids)
            result = run(command, cwd)
            if "# refused" in line:
                assert result.returncode == 1, (line, result.stdout, result.stderr)
            elif "tickets transition" in line and line.split()[5] == "resolved":
                # the gateway sees the pump primed within a poll or two: until then it refuses
                while result.returncode != 0:
                    assert "has not returned to normal" in result.stderr, result.stderr
                    time.sleep(0.5)
                    result = run(command, cwd)
                    assert time.monotonic() - started < 240, "the pump never came back"
            else:
                assert result.returncode == 0, (line, result.stdout, result.stderr)
            after(line, result, demo, cwd, watcher, ids)
    finally:
        if watcher is not None:
            watcher.close()
    # the numbers the README's text gives are the ones the demo printed
    assert f"opens an emergency ticket, **#{ids['fire-1']}**" in readme
    assert f"a work order, **#{ids['pump-1']}**" in readme
    assert f'"action":"created","id":{ids["pump-1"]},' in readme
    events = [
        json.loads(p) for p in re.findall(r"^fgw/riverside/events (\{.*\})$", watcher.text(), re.M)
    ]
    created = {e["id"]: e["ticket"]["device"] for e in events if e.get("action") == "created"}
    assert created.get(ids["pump-1"]) == "pump-1" and created.get(ids["fire-1"]) == "fire-1"
    assert (cwd / "report.html").stat().st_size > 500
    assert f"`lift_entrapment` incident, **#{ids['entrapment']}**" in readme
    assert f'"incident":{{"id":{ids["entrapment"]},' in readme
    assert f"prints the drill's number, **#{ids['drill']}**" in readme


def before(line: str, demo: Demo, cwd: Path, watcher: Watcher, ids: dict[str, int]) -> None:
    """Wait for what the README says has happened before this command (conditions, not sleeps)."""
    if "fire-1 fire --zone 5" in line:  # zone 5 joins a fire that is already active
        wait_for(
            "the fire",
            lambda: (
                (retained_alarm(watcher, "fire-1.fire_alarm") or {}).get("state") == "active_unack"
            ),
        )
    if "fgw drill" in line:  # the entrapment's incident is open before the drill takes a number
        wait_for(
            "the entrapment's incident", lambda: incident_of(demo.site, cwd, "lift_entrapment")
        )
    if "tickets list" in line:  # "30 s later": the dry run's on-delay
        wait_for("the pump's ticket", lambda: ticket_of(demo.site, cwd, "pump-1"), timeout=120)


def after(
    line: str,
    result: subprocess.CompletedProcess[str],
    demo: Demo,
    cwd: Path,
    watcher: Watcher,
    ids: dict[str, int],
) -> None:
    """Check what the README says each step shows; take ticket ids from the output."""
    if "fire-1 fire --zone 5" in line:

        def both_zones() -> bool:
            alarm = retained_alarm(watcher, "fire-1.fire_alarm") or {}
            return "3 (B1 车库), 5 (1号楼大堂)" in str(alarm.get("message"))

        wait_for("zone 5 in the fire's message", both_zones)
        alarm = retained_alarm(watcher, "fire-1.fire_alarm") or {}
        assert alarm["state"] == "active_unack" and alarm["episode"] == 1
    if "fire-1 clear" in line:
        wait_for(
            "the fire cleared",
            lambda: (
                (retained_alarm(watcher, "fire-1.fire_alarm") or {}).get("state") == "rtn_unack"
            ),
        )
        fire = ticket_of(demo.site, cwd, "fire-1")
        assert fire is not None and fire["urgency"] == "emergency"
        ids["fire-1"] = int(fire["id"])  # type: ignore[call-overload]
    if "tickets list" in line:
        row = next((r for r in result.stdout.splitlines() if "pump-1" in r), "")
        found = re.match(r"#(\d+)", row)
        assert found, result.stdout
        ids["pump-1"] = int(found.group(1))
    if "tickets transition" in line or "tickets show" in line:
        said = int(line.split()[4])
        assert said == ids["pump-1"], (
            f"the README works ticket #{said}; the pump's is #{ids['pump-1']}"
        )
    if "lift-2 entrapment" in line:
        wait_for(
            "the entrapment's incident", lambda: incident_of(demo.site, cwd, "lift_entrapment")
        )
        ids["entrapment"] = int(incident_of(demo.site, cwd, "lift_entrapment")["id"])  # type: ignore[index,call-overload]
    if "fgw drill" in line:
        found = re.search(r"drill #(\d+) opened", result.stdout)
        assert found, result.stdout
        ids["drill"] = int(found.group(1))
    if "incidents show" in line:
        said = int(line.split()[4])
        assert said == ids["drill"], (
            f"the README shows incident #{said}; the drill is #{ids['drill']}"
        )
        assert "DRILL" in result.stdout, result.stdout
    if "tickets show" in line:
        assert "resolved" in result.stdout and "primed, valve open" in result.stdout, result.stdout
