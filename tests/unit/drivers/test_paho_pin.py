"""paho-mqtt is pinned because `drivers.mqtt_link` uses three of its private members.

Why, and what to re-verify before moving the pin: docs/design/mqtt.md. These checks fail first
on an upgrade; the behaviour itself (same bytes, same messages and PUBACKs as paho's own client)
is tests/unit/drivers/test_mqtt_link.py.
"""

from __future__ import annotations

import inspect
import tomllib

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from drivers.mqtt_link import _BufferedClient
from tests.support import ROOT

PINNED = "2.2.0"

REVERIFY = (
    "drivers/mqtt_link.py relies on paho-mqtt {pinned}'s private members; before moving the pin, "
    "re-read the new paho/mqtt/client.py: `_packet_read` reads through `self._sock_recv(n)` "
    "(BlockingIOError when there is nothing, b'' at the end), `_in_packet['command']` is 0 "
    "between packets, `_send_puback(mid)` queues a PUBACK; then run tests/unit/drivers/ and "
    "tests/integration/mqtt/ and update PINNED here, pyproject.toml and docs/design/mqtt.md. "
)


def test_the_installed_paho_is_the_pinned_one() -> None:
    found = paho.mqtt.__version__
    assert found == PINNED, REVERIFY.format(pinned=PINNED) + f"Installed: {found}."


def test_pyproject_pins_exactly_that_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    paho_pins = [d for d in project["dependencies"] if d.startswith("paho-mqtt")]
    assert paho_pins == [f"paho-mqtt=={PINNED}"], REVERIFY.format(pinned=PINNED)


def test_the_private_members_have_the_signatures_the_link_uses() -> None:
    why = REVERIFY.format(pinned=PINNED)
    assert str(inspect.signature(mqtt.Client._sock_recv)) == "(self, bufsize: 'int') -> 'bytes'", (
        why
    )
    assert str(inspect.signature(mqtt.Client._send_puback)) == (
        "(self, mid: 'int') -> 'MQTTErrorCode'"
    ), why
    assert "self._sock_recv(" in inspect.getsource(mqtt.Client._packet_read), why
    client = _BufferedClient(CallbackAPIVersion.VERSION2)
    assert client._in_packet["command"] == 0, why  # a fresh client is between packets
