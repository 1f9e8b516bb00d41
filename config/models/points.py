"""Points (PRODUCT §2): where a value is read on Modbus or MQTT, and how it is decoded."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from config.models.base import Strict, Text

Register = Literal["holding", "input", "coil", "discrete"]
PointType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]

REGISTER_COUNT: dict[str, int] = {
    "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2,
    "int64": 4, "uint64": 4, "float32": 2, "float64": 4,
}  # fmt: skip
"""Registers a value of each type takes (strings: their `length`)."""

ORDERS: dict[int, tuple[str, ...]] = {
    1: ("AB", "BA"),
    2: ("ABCD", "CDAB", "BADC", "DCBA"),
    4: ("ABCDEFGH", "GHEFCDAB", "BADCFEHG", "HGFEDCBA"),
}
"""Byte orders allowed per register count; the first is the default (big-endian, as Modbus)."""


class PointBase(Strict):
    """What every point has, whatever its wire."""

    type: PointType = "float32"
    unit: str = ""
    range: tuple[float, float] | None = None
    scale: float = 1.0
    offset: float = 0.0
    doc: str = ""
    title: Text | None = None  # what the console calls it, in both languages
    deadband: float | None = Field(default=None, ge=0)  # history: stored when it moves beyond

    @field_validator("range")
    @classmethod
    def _range_ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError("range must be [min, max] with min <= max")
        return value


class ModbusPoint(PointBase):
    """A point read from Modbus registers or bits (PRODUCT §2, *Modbus points*)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    table: Register = Field(alias="register")  # `register` would shadow ABCMeta.register
    address: int = Field(ge=0, le=65535)
    type: PointType = "uint16"
    length: int | None = Field(default=None, ge=1, le=125)
    bit: int | None = Field(default=None, ge=0, le=15)
    order: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ModbusPoint:
        bits = self.table in ("coil", "discrete")
        if bits and self.type != "bool":
            raise ValueError(f"a {self.table} is one bit: type must be bool, not {self.type}")
        if self.bit is not None and (bits or self.type not in ("uint16", "int16")):
            raise ValueError("bit picks one bit of a 16-bit register: use type uint16 or int16")
        if self.type == "string" and self.length is None:
            raise ValueError("a string needs length (in registers)")
        if self.type != "string" and self.length is not None:
            raise ValueError("length is only for strings")
        if self.type == "bool" and not bits:
            raise ValueError("a bool in a register is written as type uint16 with bit: N")
        if self.order is not None:
            count = REGISTER_COUNT.get(self.type)
            allowed = ORDERS.get(count or 0, ())
            if self.type == "string":
                allowed = ORDERS[1]
            if self.order not in allowed:
                options = ", ".join(allowed) or "none (no byte order for bits)"
                raise ValueError(f"order {self.order!r} is not valid for {self.type}: {options}")
        if self.address + self.register_count > 65536:
            raise ValueError("the point runs past register 65535")
        return self

    @property
    def register_count(self) -> int:
        """Registers (or bits) the point occupies on the wire."""
        if self.table in ("coil", "discrete"):
            return 1
        if self.type == "string":
            return self.length or 1
        return REGISTER_COUNT[self.type]

    @property
    def byte_order(self) -> str:
        if self.order is not None:
            return self.order
        if self.type == "string":
            return "AB"
        return ORDERS[REGISTER_COUNT.get(self.type, 1)][0]

    @property
    def value_type(self) -> str:
        """The decoded value's type: a picked bit is a bool."""
        return "bool" if self.bit is not None else self.type


class MqttPoint(PointBase):
    """A point read from an MQTT message (PRODUCT §2, *MQTT points*)."""

    topic: str = ""
    field: str | None = None

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if "+" in value or "#" in value:
            raise ValueError("a point's topic cannot contain MQTT wildcards (+ or #)")
        return value


def _point_kind(value: Any) -> str:
    """A point with `register` is a Modbus point; any other is an MQTT point."""
    if isinstance(value, dict):
        return "modbus-point" if "register" in value else "mqtt-point"
    return "modbus-point" if isinstance(value, ModbusPoint) else "mqtt-point"


POINT_TAGS = ("modbus-point", "mqtt-point")
"""Union tags pydantic puts into error locations; not part of the file, dropped from paths."""

Point = Annotated[
    Annotated[ModbusPoint, Tag("modbus-point")] | Annotated[MqttPoint, Tag("mqtt-point")],
    Discriminator(_point_kind),
]
