"""Devices of one template share the engine's point index: each must still behave on its own.

The engine keeps one point index per distinct list of rules (a template's), each device's rules in
a list on one record, and which of them are idle as bits of one int on that record. This feeds
random polls to three pumps and a fire panel held by one engine and, device by device, to engines
that each hold that device alone: every device must report exactly the same changes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from config.site import Rule
from config.site import template_rules as site_template_rules
from config.templates import load_template
from ground.model import DeviceStatus, Quality, Reading
from rules.engine import ConditionChange, RuleEngine
from tests.support import examples

WALL0 = 1_800_000_000.0
DEVICES = {"pump-1": "booster_pump", "pump-2": "booster_pump", "pump-3": "booster_pump",
           "fire-1": "fire_panel"}  # fmt: skip
RULES: dict[str, list[Rule]] = {
    device: site_template_rules(device, load_template(template))
    for device, template in DEVICES.items()
}
POINTS = {
    "booster_pump": {
        "running": st.booleans(),
        "fault": st.booleans(),
        "outlet_pressure": st.sampled_from([1.0, 2.9, 3.0, 4.5]),
        "pressure_setpoint": st.sampled_from([4.5, 5.0]),
        "flow": st.sampled_from([0.1, 0.5, 12.0]),
        "vibration": st.sampled_from([2.0, 7.0, 7.2, 9.0]),
        "starts": st.integers(0, 12),
    },
    "fire_panel": {
        "fire": st.booleans(),
        "zones": st.sampled_from([0, 0, 4]),
        "fire_pump_ready": st.booleans(),
        "mains_fail": st.booleans(),
        "sprinkler_pressure": st.sampled_from([0.05, 0.6]),
    },
}


@st.composite
def poll(draw: st.DrawFn) -> tuple[str, list[tuple[str, object, Quality]]]:
    device = draw(st.sampled_from(sorted(DEVICES)))
    points = POINTS[DEVICES[device]]
    names = draw(st.lists(st.sampled_from(sorted(points)), min_size=1, max_size=6))
    quality = st.sampled_from([Quality.GOOD] * 8 + [Quality.BAD])
    return device, [(p, draw(points[p]), draw(quality)) for p in names]


step = st.one_of(
    st.tuples(st.just("poll"), poll()),
    st.tuples(st.just("tick"), st.sampled_from([0.25, 1.0, 5.0, 20.0])),
    st.tuples(st.just("status"), st.tuples(st.sampled_from(sorted(DEVICES)), st.booleans())),
)


def _key(change: ConditionChange) -> str:
    return change.alarm_id


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(step, max_size=60))
def test_devices_sharing_a_template_behave_as_if_alone(steps: list[tuple[str, object]]) -> None:
    together = RuleEngine([r for rules in RULES.values() for r in rules])
    alone = {device: RuleEngine(rules) for device, rules in RULES.items()}
    now = 0.0
    for kind, arg in steps:
        if kind == "tick":
            now += arg  # type: ignore[operator]
            got = together.tick(now)
            want = [c for engine in alone.values() for c in engine.tick(now)]
            assert sorted(got, key=_key) == sorted(want, key=_key)
        elif kind == "status":
            device, online = arg  # type: ignore[misc]
            status = DeviceStatus(device, online, WALL0 + now)
            assert together.device_status(status, now) == alone[device].device_status(status, now)
        else:
            device, readings = arg  # type: ignore[misc]
            batch = [Reading(device, p, v, q, WALL0 + now) for p, v, q in readings]  # type: ignore[arg-type]
            assert together.ingest(batch, now) == alone[device].ingest(batch, now)
    for device, engine in alone.items():
        assert sorted(a for a in together.active() if a.startswith(f"{device}.")) == sorted(
            engine.active()
        )
        assert together.values(device) == engine.values(device)
