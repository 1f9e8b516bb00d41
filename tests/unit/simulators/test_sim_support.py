"""Reading a simulator's register image back as engineering values, independently of the gateway.

A test-only decoder (struct, by the letters of PRODUCT §2), so simulator tests do not depend on the
gateway's decoder, which is tested against the simulators' encoder.
"""

from __future__ import annotations

import struct
from typing import Any

from config.models import ModbusPoint
from simulators.base import DeviceSimulator

FORMATS = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
    "float32": ">f", "float64": ">d",
}  # fmt: skip


def decode_words(point: ModbusPoint, words: list[int]) -> Any:
    """The engineering value of `words` (or a bit) as the point describes it."""
    if point.table in ("coil", "discrete"):
        return bool(words[0])
    if point.bit is not None:
        return bool(words[0] >> point.bit & 1)
    wire = b"".join(w.to_bytes(2, "big") for w in words)
    if point.type == "string":
        if point.byte_order == "BA":
            wire = b"".join(wire[i + 1 : i + 2] + wire[i : i + 1] for i in range(0, len(wire), 2))
        return wire.rstrip(b"\0").decode()
    order = point.byte_order
    big = bytes(wire[order.index(chr(ord("A") + i))] for i in range(len(order)))
    raw = struct.unpack(FORMATS[point.type], big)[0]
    return raw * point.scale + point.offset


def read(sim: DeviceSimulator, name: str) -> Any:
    """Point `name` as a Modbus client would read it from the simulator's register image."""
    point = sim.points[name]
    assert isinstance(point, ModbusPoint)
    table = sim.register_image()[point.table]
    words = [table[point.address + i] for i in range(point.register_count)]
    return decode_words(point, words)
