"""`history.deadband` checked at load: names, points and values, each error at its file:line.

The golden cases `tests/cases/history_deadband_*` hold the messages; these tests hold the rest of
the contract: what is accepted, what is only a warning, and both YAML paths giving the same lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.errors import SiteError
from config.site import Site, load_site
from gateway.storage.deadbands import site_deadbands

HEAD = """site: {id: bands}
modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502}]
"""
DEVICES = """devices:
  - {id: pump-1, template: booster_pump, modbus: {bus: bus, unit: 1}}
  - id: pump-2
    template: booster_pump
    modbus: {bus: bus, unit: 2}
    points:
      seal_temp: {register: input, address: 40, type: int16, scale: 0.1, unit: C}
  - id: door-1
    template: access_door
    mqtt: {topic: doors/1}
    points:
      note: {topic: note, type: string}
"""


def _load(tmp_path: Path, history: str, devices: str = DEVICES) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(HEAD + history + devices)
    return load_site(path)


def _errors(tmp_path: Path, history: str, devices: str = DEVICES) -> list[str]:
    with pytest.raises(SiteError) as caught:
        _load(tmp_path, history, devices)
    return [
        str(issue).replace(str(tmp_path / "site.yaml"), "site.yaml")
        for issue in caught.value.issues
    ]


def test_known_names_and_numbers_are_accepted_and_applied(tmp_path: Path) -> None:
    site = _load(
        tmp_path,
        "history:\n  deadband:\n    pump-1.flow: 0\n    booster_pump.flow: 0.25\n"
        "    booster_pump.seal_temp: 2\n    pump-2.outlet_pressure: 1\n",
    )
    assert site.warnings == []
    band = site_deadbands(site)
    assert band("pump-1", "flow") == 0.0  # the device's key before the template's
    assert band("pump-2", "flow") == 0.25
    assert band("pump-2", "seal_temp") == 2.0  # template.point reaches a point a device adds
    assert band("pump-2", "outlet_pressure") == 1.0
    assert isinstance(site.file.history.deadband["pump-1.flow"], float)


def test_a_template_no_device_uses_is_a_warning_not_an_error(tmp_path: Path) -> None:
    site = _load(tmp_path, "history:\n  deadband:\n    energy_meter.voltage_l1: 1\n")
    assert [str(w).replace(str(tmp_path / "site.yaml"), "site.yaml") for w in site.warnings] == [
        "site.yaml:5: history.deadband.energy_meter.voltage_l1: warning: no device of this site "
        "uses template energy_meter: it applies to nothing"
    ]


def test_a_device_named_like_a_template_is_checked_as_both(tmp_path: Path) -> None:
    devices = "devices:\n  - {id: lift, template: booster_pump, modbus: {bus: bus, unit: 1}}\n"
    errors = _errors(tmp_path, "history:\n  deadband: {lift.flow: 1}\n", devices)
    assert errors == [
        "site.yaml:4: history.deadband.lift.flow: template lift has no point 'flow' (did you mean 'floor'?)"
    ]
    site = _load(
        tmp_path, "history:\n  deadband: {lift.floor: 1}\n", devices.replace("booster_pump", "lift")
    )
    assert [w.message for w in site.warnings] == [
        "'lift' is a device and a template: the deadband applies to both"
    ]


@pytest.mark.parametrize(
    ("history", "error"),
    [
        (
            "history:\n  deadband:\n    door-1.note: 1\n",
            "site.yaml:5: history.deadband.door-1.note: note is a string point: every change of "
            "it is stored; a deadband is for numbers",
        ),
        (
            "history:\n  deadband:\n    access_door.door_open: 0\n",
            "site.yaml:5: history.deadband.access_door.door_open: door_open is a bool point: every "
            "change of it is stored; a deadband is for numbers",
        ),
        (  # an integer beyond any float is not finite either
            "history:\n  deadband:\n    pump-1.flow: " + "9" * 400 + "\n",
            "site.yaml:5: history.deadband.pump-1.flow: a deadband is a number >= 0 in the "
            "point's unit, got " + "9" * 400,
        ),
        (
            "history:\n  deadband:\n    pump-1.flow: .nan\n",
            "site.yaml:5: history.deadband.pump-1.flow: a deadband is a number >= 0 in the "
            "point's unit, got nan",
        ),
        (
            "history:\n  deadband:\n    pump-1.flow.max: 1\n",
            "site.yaml:5: history.deadband.pump-1.flow.max.[key]: the key is device.point or "
            "template.point",
        ),
    ],
)
def test_what_cannot_apply_is_an_error_at_its_key(tmp_path: Path, history: str, error: str) -> None:
    assert _errors(tmp_path, history) == [error]


def test_the_round_trip_yaml_path_names_the_same_lines(tmp_path: Path) -> None:
    """An anchor sends the file through ruamel instead of the fast loader: same file:line."""
    history = "history:\n  deadband:\n    pump-1.flow: &band 1\n    pump1.flow: *band\n"
    assert _errors(tmp_path, history) == [
        "site.yaml:6: history.deadband.pump1.flow: no device or template 'pump1' "
        "(did you mean 'pump-1'?)"
    ]


def test_every_error_is_reported_not_just_the_first(tmp_path: Path) -> None:
    history = "history:\n  deadband:\n    pump-1.flwo: 1\n    pump-1.flow: 1\n    pump1.flow: 1\n"
    devices = DEVICES.replace("type: string}", "type: string, deadband: 1}")
    assert _errors(tmp_path, history, devices) == [
        "site.yaml:5: history.deadband.pump-1.flwo: pump-1 has no point 'flwo' "
        "(did you mean 'flow'?)",
        "site.yaml:7: history.deadband.pump1.flow: no device or template 'pump1' "
        "(did you mean 'pump-1'?)",
        "site.yaml:19: devices[2].points.note.deadband: note is a string point: every change of "
        "it is stored; a deadband is for numbers",
    ]
