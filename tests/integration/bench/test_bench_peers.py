"""`bench.peers` runs tiny against the real peer and prints every scenario for both gateways.

No figure is asserted (benchmarks are read, not tested); this keeps the bench from rotting. The
peer (`thingsboard-gateway` from PyPI) lives in a venv kept between runs: `$FGW_BENCH_WORK`, else
`~/.cache/fgw-bench` (outside the clone, so CI on the same machine installs it once). Where it
cannot be installed (no registry), the test is skipped with pip's reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import peers
from bench.peer_venv import PeerUnavailable, ensure_peer
from config.site import load_site

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def peer_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = Path(os.environ.get("FGW_BENCH_WORK", Path.home() / ".cache" / "fgw-bench"))
    try:
        ensure_peer(work)
    except PeerUnavailable as exc:
        pytest.skip(f"the peer gateway cannot be installed here: {exc}")
    return work


def test_tiny_run_prints_every_scenario_for_both(
    peer_work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("FGW_BENCH_WORK", str(peer_work))
    peers.main(["--tiny", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Traceback" not in out
    for scenario in peers.SCENARIOS:
        section = out.split(f"## {scenario}\n", 1)[1].split("\n\n", 1)[0]
        assert "Facility Gateway" in section and "ThingsBoard GW" in section, section
    assert "CPU per value polled, peer/ours" in out
    results = json.loads((tmp_path / "results.json").read_text())
    assert {r["gateway"] for r in results["polling"]} == {"fgw", "peer"}
    config = json.loads((tmp_path / "round-1" / "polling-4-peer" / "peer" / "tb_gateway.json")
                        .read_text())  # fmt: skip
    assert config["thingsboard"]["host"] == "127.0.0.1"
    assert config["thingsboard"]["remoteConfiguration"] is False
    peers.main(["--report", str(tmp_path / "results.json")])
    report = capsys.readouterr().out
    for scenario in peers.SCENARIOS:
        assert f"### {scenario}" in report
    assert "| 4 | ThingsBoard IoT Gateway |" in report and "CPU per value polled" in report
    assert "| booster-pump-1 |" in report  # the converter's units, each with its rates
    assert [r["units"] for r in results["converter"]] == [3, 3]
    # behind the converter: every slave of the peer on the one host:port (one connection)
    converter = tmp_path / "round-1" / "converter-3-peer" / "peer" / "modbus.json"
    endpoints = {
        (s["host"], s["port"]) for s in json.loads(converter.read_text())["master"]["slaves"]
    }
    assert len(endpoints) == 1
    run = tmp_path / "round-1" / "polling-4-peer"
    slaves = json.loads((run / "peer" / "modbus.json").read_text())["master"]["slaves"]
    site = load_site(run / "site.yaml")  # the same devices and points as the site file
    assert {s["deviceName"]: len(s["timeseries"]) for s in slaves} == {
        d: len(device.points) for d, device in site.devices.items()
    }
