"""The MQTT link's fast read path reads exactly what paho reads: same messages, same PUBACKs.

`drivers.mqtt_link` cuts complete PUBLISH packets out of its read buffer itself and leaves every
other packet to paho. These properties feed the same byte stream, cut at random places, to paho's
own client and to the link's client, and compare what comes out. Against a real Mosquitto:
tests/integration/mqtt/test_mqtt_link.py (QoS 1 acknowledged), test_mqtt_driver.py and
test_mqtt_security.py (the driver's connection, reconnects and TLS).
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.client import _ConnectionState
from paho.mqtt.enums import CallbackAPIVersion

from drivers.mqtt_link import READ_SIZE, Message, _BufferedClient, split_publish
from tests.support import examples

PINGRESP = b"\xd0\x00"


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, payload: bytes, qos: int, retain: bool, mid: int) -> bytes:
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + (mid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | qos << 1 | retain]) + remaining_length(len(body)) + body


class FakeSocket:
    """Hands out `data` a segment at a time (as TCP would), records what is sent."""

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self.segments = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        self.segments = [s for s in self.segments if s]
        self.sent = bytearray()

    def recv(self, size: int) -> bytes:
        if not self.segments:
            raise BlockingIOError
        head = self.segments[0]
        self.segments[0] = head[size:]
        if not self.segments[0]:
            self.segments.pop(0)
        return head[:size]

    def send(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def close(self) -> None:
        pass


def connected(client: mqtt.Client, sock: FakeSocket, inbox: list[Message]) -> None:
    client.on_message = lambda _c, _u, m: inbox.append((m.topic, m.payload, m.retain))
    client._sock = sock  # type: ignore[assignment]
    client._state = _ConnectionState.MQTT_CS_CONNECTED


def read_with_paho(data: bytes, cuts: list[int]) -> tuple[list[Message], bytes]:
    sock, inbox = FakeSocket(data, cuts), []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="paho")
    connected(client, sock, inbox)
    while sock.segments:
        assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    client._sock = None
    return inbox, bytes(sock.sent)


def read_with_link(data: bytes, cuts: list[int]) -> tuple[list[Message], bytes]:
    sock, inbox = FakeSocket(data, cuts), []
    client = _BufferedClient(CallbackAPIVersion.VERSION2, client_id="link")
    connected(client, sock, inbox)
    while sock.segments or client.buffered():  # what MqttLink._readable does on each readiness
        assert client.read_some(inbox) == mqtt.MQTT_ERR_SUCCESS
    client._sock = None
    return inbox, bytes(sock.sent)


topics = st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t)
payloads = st.one_of(
    st.binary(max_size=200),
    st.binary(min_size=120, max_size=20_000),  # remaining length of 2 and 3 bytes
)
packets = st.one_of(
    st.builds(
        publish, topics, payloads, st.sampled_from([0, 1, 2]), st.booleans(), st.integers(1, 65535)
    ),
    st.just(PINGRESP),  # QoS 2 and other packet types are left to paho
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(packets, min_size=1, max_size=40), st.data())
def test_the_fast_path_reads_what_paho_reads(stream: list[bytes], data: Any) -> None:
    raw = b"".join(stream)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=12))))
    assert read_with_link(raw, cuts) == read_with_paho(raw, cuts)


def test_a_flood_larger_than_the_buffer_arrives_whole_and_in_order() -> None:
    stream = [publish(f"doors/d{n % 50}/state", b'{"open": false}' * 5, n % 2, False, n + 1)
              for n in range(2_000)]  # fmt: skip
    raw = b"".join(stream)
    cuts = list(range(READ_SIZE // 3, len(raw), READ_SIZE // 3))
    inbox, sent = read_with_link(raw, cuts)
    assert (inbox, sent) == read_with_paho(raw, cuts)
    assert [t for t, _, _ in inbox] == [f"doors/d{n % 50}/state" for n in range(2_000)]
    assert sent.count(b"\x40\x02") == 1_000  # one PUBACK per QoS 1 message


@given(st.binary(min_size=1, max_size=300))
def test_split_publish_never_raises_and_agrees_with_paho(buf: bytes) -> None:
    packet = split_publish(buf, 0)
    if packet is None:
        return
    end, topic, payload, retain, mid = packet
    assert end <= len(buf)
    length_bytes = next(i for i in range(1, 5) if not buf[i] & 0x80)
    decoded = _packet.decode_publish(buf[0], buf[1 + length_bytes : end], mqtt.MQTTv311)
    assert (decoded.topic.decode(), decoded.payload, decoded.retain) == (topic, payload, retain)
    assert (decoded.mid if decoded.qos else None) == mid
