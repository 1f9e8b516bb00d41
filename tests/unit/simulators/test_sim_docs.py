"""The equipment docs are generated, committed and true: regenerating changes nothing, and their
mbpoll command lines read the simulators of the example site as they say."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

import pytest

from config.site import load_site
from simulators import docgen
from simulators.runner import SiteSimulator
from tests.support import ROOT, free_port


def test_committed_docs_are_the_generated_ones() -> None:
    for name, text in docgen.generated().items():
        path = ROOT / "docs" / "equipment" / name
        assert path.exists(), f"{path} is missing: run python -m simulators.docgen"
        assert path.read_text("utf-8") == text, f"{path} is stale: run python -m simulators.docgen"


def test_check_mode_names_stale_pages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docgen.main(["--out", str(tmp_path)]) == 0
    assert docgen.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "lift.md").write_text("old")
    assert docgen.main(["--out", str(tmp_path), "--check"]) == 1
    assert "lift.md" in capsys.readouterr().out


def test_every_fault_and_point_is_documented() -> None:
    pump = docgen.render("booster_pump")
    for name in (
        "trip",
        "dry_run",
        "low_pressure",
        "vibration",
        "short_cycling",
        "offline",
        "clear",
    ):
        assert f"| `{name}` |" in pump
    assert "| `run_hours` | input | 6 | 7 | uint32 | CDAB |  | × 0.1 | h |" in pump
    assert "`fgw inject SITE fire-1 fire --zone 3`" in docgen.render("fire_panel")


def mbpoll_lines(template: str) -> list[tuple[list[str], str]]:
    text = docgen.render(template)
    out = []
    for line in text.splitlines():
        if line.startswith("mbpoll "):
            command, _, comment = line.partition("#")
            out.append((shlex.split(command), comment.strip()))
    return out


async def run_mbpoll(args: list[str], port: int) -> list[float]:
    args = [str(port) if a == str(docgen.EXAMPLE_PORT) else a for a in args]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, f"{shlex.join(args)}: {(out + err).decode()}"
    found = re.findall(r"^\[\d+\]:\s+(\S+)", out.decode(), re.M)
    return [float(int(v, 16)) if v.startswith("0x") else float(v) for v in found]


async def test_the_docs_mbpoll_lines_read_the_example_site() -> None:
    port = free_port()
    example = ROOT / "examples" / "riverside.yaml"
    text = example.read_text("utf-8").replace(f"port: {docgen.EXAMPLE_PORT}", f"port: {port}")
    site = load_site(example, text)
    async with SiteSimulator(site, seed=1, mqtt=False) as sim:
        sim.devices["pump-1"].set("run_hours", 1234.5)
        sim.devices["pump-1"].set("outlet_pressure", 4.25)
        sim.devices["meter-1"].set("voltage_l2", 231.5)
        await sim.refresh()
        expected = {"run_hours": 12345, "outlet_pressure": 4.25, "voltage_l2": 231.5}
        checked = set()
        for template in ("booster_pump", "energy_meter", "lift", "fire_panel"):
            for args, comment in mbpoll_lines(template):
                values = await run_mbpoll(args, port)
                assert values, f"{shlex.join(args)} read nothing"
                point = comment.split(" ")[0].rstrip(",")
                if point in expected:
                    assert values[0] == pytest.approx(expected[point]), comment
                    checked.add(point)
        assert checked == set(expected)


def test_the_door_command_watches_where_the_example_door_publishes() -> None:
    site = load_site(ROOT / "examples" / "riverside.yaml")
    assert site.device_topic(site.devices["door-lobby"]) == docgen.EXAMPLE_TOPIC
