"""Hypothesis fuzzing of what comes from outside (issue 6): no input crashes the gateway.

Complements the parser-level fuzzing in test_mqtt_payload, test_modbus_decode and test_site_config
with the layers around them: the MQTT driver's message handler for any topic and payload (what a
misbehaving device or a stranger on the broker sends), Modbus decoding for *any* valid point
definition and any words (a wrong count included), and the site loader on mutations of the real
example site (what an engineer editing it by hand produces).
"""

from __future__ import annotations

import copy
import io
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from config.errors import SiteError
from config.models import ORDERS, REGISTER_COUNT, ModbusPoint
from config.site import Site, load_site
from drivers.modbus.decode import decode_point
from drivers.mqtt import MqttDriver
from ground.model import DeviceStatus, Quality, Reading
from tests.support import ROOT, examples

EXAMPLE = ROOT / "examples" / "riverside.yaml"


class Sink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def readings_(self, batch: list[Reading]) -> None:
        self.readings.extend(batch)

    readings = readings_  # type: ignore[assignment]

    def device_status(self, status: DeviceStatus) -> None:
        pass


def _door_site() -> Site:
    site = load_site(EXAMPLE)
    assert any(d.spec.mqtt for d in site.devices.values())
    return site


SITE = _door_site()
MQTT_DEVICES = [d for d in SITE.devices.values() if d.spec.mqtt is not None]
TOPICS = sorted({SITE.device_topic(d) for d in MQTT_DEVICES})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(TOPICS),
    st.sampled_from(["", "/state", "/event", "/online", "/x/y", "/#"]),
    st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: __import__("json").dumps(v, allow_nan=True).encode()),
    ),
    st.booleans(),
)
def test_the_mqtt_driver_handles_any_message_on_any_topic(
    topic: str, suffix: str, raw: bytes, retained: bool
) -> None:
    sink = Sink()
    driver = MqttDriver(SITE, MQTT_DEVICES, sink)  # type: ignore[arg-type]
    driver.handle(topic + suffix, raw, retained=retained)
    driver.handle(topic + suffix, raw)  # the same again: counted, never a crash
    for reading in sink.readings:
        assert reading.quality in (Quality.GOOD, Quality.BAD, Quality.STALE)
        if isinstance(reading.value, float):
            assert reading.quality is Quality.BAD or math.isfinite(reading.value)


@st.composite
def modbus_points(draw: st.DrawFn) -> ModbusPoint:
    table = draw(st.sampled_from(["holding", "input", "coil", "discrete"]))
    fields: dict[str, Any] = {"register": table, "address": draw(st.integers(0, 1000))}
    if table in ("coil", "discrete"):
        fields["type"] = "bool"
    else:
        kind = draw(st.sampled_from([*REGISTER_COUNT.keys(), "string"]))
        if kind == "bool":
            kind = "uint16"
            fields["bit"] = draw(st.integers(0, 15))
        fields["type"] = kind
        if kind == "string":
            fields["length"] = draw(st.integers(1, 8))
            fields["order"] = draw(st.sampled_from(ORDERS[1]))
        elif "bit" not in fields:
            fields["order"] = draw(st.sampled_from(ORDERS[REGISTER_COUNT[kind]]))
        fields["scale"] = draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
        fields["offset"] = draw(st.floats(-1e6, 1e6))
        if draw(st.booleans()):
            low = draw(st.floats(-1e9, 1e9))
            fields["range"] = (low, low + draw(st.floats(0, 1e9)))
    return ModbusPoint.model_validate(fields)


@settings(max_examples=examples(500), deadline=None)
@given(modbus_points(), st.data())
def test_any_point_definition_decodes_any_words_without_raising(
    point: ModbusPoint, data: st.DataObject
) -> None:
    count = point.register_count + data.draw(st.sampled_from([0, 0, 0, -1, 1]))
    if point.table in ("coil", "discrete"):
        raw: list[Any] = data.draw(
            st.lists(st.booleans(), min_size=max(count, 0), max_size=max(count, 0))
        )
    else:
        raw = data.draw(
            st.lists(st.integers(0, 65535), min_size=max(count, 0), max_size=max(count, 0))
        )
    value, quality = decode_point(point, raw)
    assert quality in (Quality.GOOD, Quality.BAD)
    if quality is Quality.GOOD:
        assert value is not None
        if isinstance(value, float):
            assert math.isfinite(value)


def _dump(tree: Any) -> str:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(tree, out)
    return out.getvalue()


BASE = YAML(typ="safe", pure=True).load(EXAMPLE.read_text(encoding="utf-8"))

replacements = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=12),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.sampled_from(["10s", "-1s", "0ms", "1mo", "holding", "float32", "ABCD", "pump-1", "{x}", "a/b#"]),
)  # fmt: skip


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*here, i))
    return found


PATHS = [p for p in _paths(BASE) if p]


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), st.sampled_from(["replace", "delete"]), replacements),
        min_size=1,
        max_size=4,
    )
)
def test_mutations_of_the_example_site_load_or_fail_with_line_numbered_errors(
    edits: list[tuple[tuple[Any, ...], str, Any]],
) -> None:
    tree = copy.deepcopy(BASE)
    for path, action, value in edits:
        node = tree
        try:
            for part in path[:-1]:
                node = node[part]
            if action == "delete":
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path
    try:
        text = _dump(tree)
    except Exception:
        return  # not representable as YAML
    try:
        site = load_site("fuzz.yaml", text)
    except SiteError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert str(issue).startswith("fuzz.yaml")
            assert issue.message
        return
    assert isinstance(site, Site)
