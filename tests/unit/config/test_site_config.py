"""Site-file loading: golden cases (`tests/cases/<name>/site.yaml` + `check.err`) and resolution."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import SiteError
from config.site import COMM_LOSS, load_site
from config.templates import load_template, template_names
from tests.support import CASES, ROOT, examples

EXAMPLE = ROOT / "examples" / "riverside.yaml"


def _check_output(folder: Path) -> list[str]:
    site = folder / "site.yaml"
    try:
        load_site(site)
    except SiteError as exc:
        return [str(issue).replace(str(site), "site.yaml") for issue in exc.issues]
    return []


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden_case(case: str) -> None:
    folder = CASES / case
    lines = _check_output(folder)
    expected = folder / "check.err"
    if expected.exists():
        assert lines == expected.read_text(encoding="utf-8").splitlines()
    else:
        patterns = (folder / "check.err.pattern").read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(patterns), lines
        for line, pattern in zip(lines, patterns, strict=True):
            assert re.fullmatch(pattern, line), (line, pattern)


def test_every_template_loads_and_its_rules_parse() -> None:
    names = template_names()
    assert names == [
        "access_door", "booster_pump", "energy_meter", "fire_panel", "leak_sensor", "lift",
        "water_tank",
    ]  # fmt: skip
    for name in names:
        template = load_template(name)
        assert template.points and template.rules and template.plans


def test_example_site_resolves_templates_and_overrides() -> None:
    site = load_site(EXAMPLE)
    assert site.id == "riverside" and site.topic_prefix == "fgw/riverside"
    kinds = sorted(d.measurement for d in site.devices.values())
    assert kinds.count("booster_pump") == 2 and kinds.count("lift") == 2
    assert kinds.count("access_door") == 3 and kinds.count("energy_meter") == 1
    pump2 = site.devices["pump-2"]
    rules = {r.id: r for r in pump2.rules}
    assert rules[COMM_LOSS].priority == "high"
    assert rules["low_pressure"].for_ == 15.0  # the site's override
    assert rules["low_pressure"].when.startswith("running and")  # kept from the template
    assert {r.id: r for r in site.devices["pump-1"].rules}["low_pressure"].for_ == 10.0
    fire = {r.id: r for r in site.devices["fire-1"].rules}["fire_alarm"]
    assert fire.priority == "critical" and fire.shelvable is False
    lift_plans = {p.id: p for p in site.devices["lift-1"].plans}
    assert lift_plans["lift_half_monthly"].every == "15d"
    assert site.devices["door-lobby"].points["last_event"].type == "string"


@pytest.mark.parametrize(
    ("mqtt", "topic", "expected"),
    [
        ("{}", "doors/lobby", "fgw/a/devices/doors/lobby"),
        ("{topic_prefix: acme/a}", "doors/lobby", "acme/a/devices/doors/lobby"),
        ("{device_base: iot/a}", "doors/lobby", "iot/a/doors/lobby"),
        ('{device_base: ""}', "doors/lobby", "doors/lobby"),  # bare topics, as before the base
        ("{}", "/vendor/door7", "vendor/door7"),  # a leading /: absolute
    ],
)
def test_device_topics_resolve_under_the_device_base(
    tmp_path: Path, mqtt: str, topic: str, expected: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"site: {{id: a}}\nmqtt: {mqtt}\n"
        f"devices:\n  - {{id: door, template: access_door, mqtt: {{topic: {topic}}}}}\n"
    )
    site = load_site(path)
    assert site.device_topic(site.devices["door"]) == expected


def test_example_site_has_no_warnings() -> None:
    assert load_site(EXAMPLE).warnings == []


def test_unsafe_settings_are_warned_about(tmp_path: Path) -> None:
    site = tmp_path / "s.yaml"
    site.write_text(
        "site: {id: s}\nmqtt: {host: 192.0.2.10}\nconsole: {listen: 0.0.0.0:8080}\n"
        "devices:\n  - {id: d, mqtt: {topic: x}, points: {v: {topic: v}}}\n"
    )
    warnings = [str(w) for w in load_site(site).warnings]
    assert any("anonymous MQTT" in w and ":2:" in w for w in warnings)
    assert any("console" in w and ":3:" in w for w in warnings)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SiteError) as info:
        load_site(tmp_path / "missing.yaml")
    assert "missing.yaml: (top): cannot read" in str(info.value)


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_a_site_or_a_site_error(text: str) -> None:
    """The loader never crashes with anything but SiteError, whatever the file holds."""
    try:
        load_site("fuzz.yaml", text)
    except SiteError as exc:
        assert all(str(issue).startswith("fuzz.yaml") for issue in exc.issues)


@settings(max_examples=examples(100), deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["id", "modbus", "unit", "bus", "points"]), inner, max_size=3
            )
        ),
        max_leaves=12,
    )
)
def test_any_structure_under_devices_gives_a_site_error(devices: object) -> None:
    import json

    text = "site: {id: s}\ndevices: " + json.dumps(devices) + "\n"
    with contextlib.suppress(SiteError):
        load_site("fuzz.yaml", text)
