"""The equipment docs' mbpoll command lines read the simulators of the example site as they say.

That the docs are generated and committed: tests/unit/simulators/test_sim_docs.py.
"""

from __future__ import annotations

import asyncio
import re
import shlex

import pytest

from config.site import load_site
from simulators import docgen
from simulators.runner import SiteSimulator
from tests.support import ROOT, free_port


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
