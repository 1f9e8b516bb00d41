"""The equipment docs are generated and committed: regenerating changes nothing. Their mbpoll command
lines against the simulators: tests/integration/modbus/test_sim_docs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.site import load_site
from simulators import docgen
from tests.support import ROOT


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


def test_the_door_command_watches_where_the_example_door_publishes() -> None:
    site = load_site(ROOT / "examples" / "riverside.yaml")
    assert site.device_topic(site.devices["door-lobby"]) == docgen.EXAMPLE_TOPIC
