"""What `fgw run` loads before its first poll: only what the site uses (issue 7, start-up time and
memory). The figures themselves are measured by `bench.footprint`; these tests hold the structure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from bench.sites import modbus_site_yaml
from tests.api_support import live_site
from tests.support import ROOT, Broker

PROBE = """
import json, sys
from config.site import load_site
from gateway.service import Gateway
gateway = Gateway(load_site(sys.argv[1]))
heavy = ["fastapi", "uvicorn", "starlette", "influxdb_client", "httpx", "aiosmtplib",
         "gateway.api.app", "gateway.export.influx", "gateway.notify.component"]
print(json.dumps({"loaded": [m for m in heavy if m in sys.modules],
                  "components": [c.name for c in gateway.components]}))
"""


def test_building_a_gateway_imports_no_web_stack_nor_unused_exporters(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(modbus_site_yaml(8, storage=str(tmp_path / "state")))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert "console" in result["components"]  # built (it keeps the accounts), not yet serving


async def test_the_console_loads_its_web_stack_on_the_first_connection(
    broker: Broker, tmp_path: Path
) -> None:
    async with live_site(broker.port, tmp_path) as live:
        component = live.component
        assert component.serving.is_set() and component.port is not None
        assert component.app is None  # nobody connected yet: no app built
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            response = await client.get("/healthz")
        assert response.status_code == 200
        assert component.app is not None
