"""Equipment: templates (PRODUCT §3), Modbus buses and devices (§2) with their asset records."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from config.models.base import ID_PATTERN, Duration, Strict, Text, Urgency
from config.models.maintenance import PlanSpec
from config.models.points import Point
from config.models.rules import CommLossSpec, RuleSpec


class Template(Strict):
    """An equipment template (PRODUCT §3): points, rules and plans as data."""

    id: str = Field(pattern=ID_PATTERN)
    title: Text
    protocol: Literal["modbus", "mqtt"]
    heartbeat: Duration | None = None  # MQTT devices: how often the device speaks at least
    comm_loss: CommLossSpec = CommLossSpec()
    points: dict[str, Point]
    rules: list[RuleSpec] = []
    plans: list[PlanSpec] = []


class BusSim(Strict):
    """How `fgw sim` serves a bus (ignored by `fgw run`): behind a simulated converter or not.

    `converter: true` puts the bus's units behind one serial-to-Ethernet converter: at most
    `connections` TCP connections (more are closed at once), one request at a time on the line at
    the bus's `baudrate`, each unit answering after `turnaround`; a dead unit costs the line
    `dead_timeout` and then gets silence or exception 0B (`dead_answer`). An `rtu` bus is always
    served on a pseudo-terminal pair (socat) whose client end is the bus's `port`.
    """

    converter: bool = False
    connections: int = Field(default=1, ge=1, le=16)
    turnaround: Duration = 0.005
    dead_timeout: Duration = 0.2
    dead_answer: Literal["silent", "0B"] = "silent"


class ModbusBus(Strict):
    id: str = Field(pattern=ID_PATTERN)
    transport: Literal["tcp", "rtu", "rtu-over-tcp"]
    host: str | None = None
    port: int | str | None = None  # TCP port number, or the serial device path for RTU
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout: Duration = 1.0
    retries: int = Field(default=0, ge=0, le=5)  # a silent request is sent again this many times
    max_gap: int = Field(default=16, ge=0, le=100)  # registers merged across unused addresses
    max_connections: int = Field(default=1, ge=1, le=16)  # to the endpoint, shared by its devices
    sim: BusSim = BusSim()

    @model_validator(mode="after")
    def _transport_fields(self) -> ModbusBus:
        if self.transport in ("tcp", "rtu-over-tcp"):
            kind = "a tcp bus" if self.transport == "tcp" else "an rtu-over-tcp bus"
            if not self.host:
                raise ValueError(f"{kind} needs host")
            if not isinstance(self.port, int):
                raise ValueError(f"{kind} needs a numeric port")
        elif not isinstance(self.port, str):
            raise ValueError("an rtu bus needs port: the serial device, e.g. /dev/ttyUSB0")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.transport == "rtu" and self.max_connections != 1:
            raise ValueError("max_connections: a serial port is one connection")
        return self

    @property
    def endpoint(self) -> str:
        """Where the bus is reached: `host:port`, or the serial port."""
        return str(self.port) if self.transport == "rtu" else f"{self.host}:{self.port}"

    @property
    def alarm_device(self) -> str:
        """The device id the bus's own alarm (the whole bus silent) is raised on: `modbus:BUS`,
        never a valid device id, so it cannot collide with one."""
        return f"modbus:{self.id}"

    @property
    def line_baudrate(self) -> int | None:
        """The serial line's speed, if there is one: RTU buses, or a tcp bus that states it
        (a Modbus TCP converter in front of an RS-485 line)."""
        if self.transport != "tcp" or "baudrate" in self.model_fields_set:
            return self.baudrate
        return None


class DeviceModbus(Strict):
    bus: str
    unit: int = Field(ge=1, le=247)


class DeviceMqtt(Strict):
    topic: str
    timeout: Duration | None = None  # silence after which comm_loss is raised

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or "+" in value or "#" in value or value.endswith("/"):
            raise ValueError("topic must be a topic without wildcards or a trailing /")
        return value


class Asset(Strict):
    """The equipment ledger record (设备台账). Model numbers like `3300` are text, not numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    location: str = ""
    model: str = ""
    manufacturer: str = ""
    serial: str = ""
    installed: date | None = None
    warranty_until: date | None = None


class Workarounds(Strict):
    """Device quirks, explicit and in one place rather than scattered flags."""

    max_registers: int = Field(
        default=125, ge=1, le=125
    )  # split reads for devices with a small limit
    max_bits: int = Field(default=2000, ge=1, le=2000)
    no_merge: bool = False  # one request per point, for devices that reject merged reads
    pause_after: Duration = 0.0  # quiet time after each request, for slow RTU slaves


class BaseloadRise(Strict):
    """An energy meter's opt-in night baseload alarm `{meter}.baseload_rise` (PRODUCT §11).

    Raised after a night (00:00-05:00 site time) whose mean power is above `ratio` times the mean
    of the complete nights among the four weeks before, and at least `min_kw`; needs
    `min_nights` complete reference nights. Warning class: `low` or `medium`, never life-safety.
    """

    RULE: ClassVar[str] = "baseload_rise"
    """The alarm's rule id: the alarm is `{meter}.baseload_rise`."""

    ratio: float = Field(default=1.3, gt=1.0, le=10.0)
    min_kw: float = Field(default=0.0, ge=0)
    min_nights: int = Field(default=14, ge=1, le=28)
    priority: Literal["medium", "low"] = "low"
    ticket: Urgency | None = None  # a corrective ticket per episode, as a rule's `ticket:`

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        """`baseload_rise: true` is the defaults."""
        return {} if value is True else value


class DeviceSpec(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    template: str | None = None
    modbus: DeviceModbus | None = None
    mqtt: DeviceMqtt | None = None
    poll: Duration = 1.0
    timeout: Duration | None = None  # per-device request timeout; default: the bus's
    comm_loss_polls: int = Field(default=3, ge=1, le=100)
    comm_loss_after: Duration = 10.0
    depends_on: list[str] = []
    asset: Asset = Asset()
    points: dict[str, Point] = {}
    workarounds: Workarounds = Workarounds()
    zones: dict[int, Text] = {}  # a fire panel's zone names, by zone number (1-16)
    baseload_rise: BaseloadRise | None = None  # energy meters: the night baseload alarm (§11)

    @field_validator("baseload_rise", mode="before")
    @classmethod
    def _baseload_off(cls, value: Any) -> Any:
        """`baseload_rise: false` is no alarm, as leaving it out."""
        return None if value is False else value

    @field_validator("baseload_rise")
    @classmethod
    def _baseload_meter(
        cls, value: BaseloadRise | None, info: ValidationInfo
    ) -> BaseloadRise | None:
        if value is not None and info.data.get("template") != "energy_meter":
            raise ValueError(
                "a night baseload alarm needs an energy meter (template: energy_meter)"
            )
        return value

    @field_validator("zones", mode="before")
    @classmethod
    def _zone_names(cls, value: Any) -> Any:
        """`{1: "B1 车库 / B1 garage"}`: a plain name is split at " / " into zh and en."""
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        for number, name in value.items():
            if isinstance(number, str) and number.isdigit():
                number = int(number)
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 16:
                raise ValueError(f"zone {number!r}: zones are numbered 1..16")
            if isinstance(name, str) and " / " in name:
                zh, en = name.split(" / ", 1)
                name = {"zh": zh.strip(), "en": en.strip()}
            out[number] = name
        return out

    @model_validator(mode="after")
    def _one_connection(self) -> DeviceSpec:
        if (self.modbus is None) == (self.mqtt is None):
            raise ValueError("a device needs exactly one connection: modbus or mqtt")
        if self.poll < 0.05:
            raise ValueError("poll must be at least 50ms")
        return self
