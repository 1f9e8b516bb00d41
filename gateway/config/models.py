"""The site file (PRODUCT §2) and equipment templates (§3) as pydantic models.

Models check the shape of each section; `gateway.config.site` checks what spans sections (a bus that
exists, unique ids, rule expressions naming real points) and resolves templates into devices.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    field_validator,
    model_validator,
)

from gateway.config.alarm_options import AlarmsConfig, NotifyConfig
from gateway.durations import parse_duration

ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"
"""Ids end up in MQTT topics, SQL rows and URLs: letters, digits, `_` and `-`, starting with a letter."""

POINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""Point names are identifiers so that rule expressions can name them."""


def _seconds(value: Any) -> float:
    return parse_duration(value)


Duration = Annotated[float, BeforeValidator(_seconds), PlainSerializer(lambda s: s)]
"""Seconds, written in the file as `500ms`, `10s`, `5m`, `2h`, `15d` (or a bare number of seconds)."""


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a site file must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """A text in both console languages. A plain string in the file is used for both."""

    zh: str
    en: str

    @classmethod
    def split(cls, text: str) -> Text:
        """A site file's `"中文 / English"` (names, locations) as a `Text`; without " / ", both."""
        zh, sep, en = text.partition(" / ")
        return cls(zh=zh.strip(), en=en.strip()) if sep else cls(zh=text, en=text)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"zh": value, "en": value}
        return value

    def in_locale(self, locale: str) -> str:
        return self.en if locale.lower().startswith("en") else self.zh


Register = Literal["holding", "input", "coil", "discrete"]
PointType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
Priority = Literal["critical", "high", "medium", "low"]
Urgency = Literal["emergency", "urgent", "normal", "low"]

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


class RuleSpec(Strict):
    """A rule of a template, or of the site file (PRODUCT §4)."""

    id: str = Field(pattern=ID_PATTERN)
    device: str | None = None  # site rules only: the device the rule belongs to
    when: str | None = None  # None only for a site override that changes other options
    for_: Duration = Field(default=0.0, alias="for")
    clear_for: Duration = 0.0
    deadband: float = Field(default=0.0, ge=0)
    priority: Priority | None = None
    message: Text | None = None
    shelvable: bool | None = None  # default: true, false for a life-safety rule
    life_safety: bool | None = None  # default: true for a critical rule (PRODUCT §9)
    ticket: Urgency | None = None
    enabled: bool = True
    advice: Text | None = None  # one line: what the person on duty should do first
    message_follows: list[str] = []  # points whose change while active updates the message

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CommLossSpec(Strict):
    """A template's options for its devices' built-in `comm_loss` rule (PRODUCT §3, §9)."""

    priority: Priority = "high"
    life_safety: bool | None = None  # default: true when critical
    shelvable: bool | None = None
    advice: Text | None = None  # default: check the device's power and cable


class CountPlan(Strict):
    point: str = Field(pattern=POINT_PATTERN)
    step: float = Field(gt=0)


_CALENDAR = re.compile(r"^(\d+)(d|w|mo|y)$")


class PlanSpec(Strict):
    """A maintenance plan (PRODUCT §5). Scheduling itself belongs to the maintenance module."""

    id: str = Field(pattern=ID_PATTERN)
    devices: list[str] | None = None  # site plans: which devices
    title: Text | None = None
    every: str | None = None  # calendar: 15d, 2w, 1mo, 3mo, 1y
    cron: str | None = None
    every_run_hours: float | None = Field(default=None, gt=0)
    every_count: CountPlan | None = None
    urgency: Urgency = "normal"
    enabled: bool = True
    lead: Duration | None = None  # calendar plans: open the ticket this long before it is due
    window: Duration | None = None  # meter plans: time from reaching the limit to due (7d)
    mutes: bool = False  # its ticket in progress takes the device's alarms out of service

    @model_validator(mode="after")
    def _one_calendar(self) -> PlanSpec:
        if self.every is not None and self.cron is not None:
            raise ValueError("a plan has one calendar trigger: every: or cron:, not both")
        return self

    @field_validator("every")
    @classmethod
    def _calendar(cls, value: str | None) -> str | None:
        if value is not None and not _CALENDAR.match(value):
            raise ValueError("every must be a calendar period such as 15d, 2w, 1mo, 3mo or 1y")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError("cron needs five fields: minute hour day month weekday")
        if value is not None:
            from rules.maintenance.cron import Cron

            Cron.parse(value)  # CronError is a ValueError naming the field that is wrong
        return value


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


# ---------------------------------------------------------------------------------------- site


class SiteInfo(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    timezone: str = "UTC"
    locale: Literal["zh-CN", "en"] = "zh-CN"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use e.g. Asia/Shanghai)") from exc
        return value


class StorageConfig(Strict):
    path: str = "./var"


class TlsConfig(Strict):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


class MqttConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: str | None = None
    tls: TlsConfig | None = None
    topic_prefix: str | None = None
    device_base: str | None = None  # default: {topic_prefix}/devices; "" keeps bare device topics
    client_id: str | None = None
    keepalive: Duration = 30.0
    publish_readings: bool = False

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.endswith("/") or "+" in value or "#" in value):
            raise ValueError("topic_prefix must be a topic without wildcards or a trailing /")
        return value

    @field_validator("device_base")
    @classmethod
    def _device_base(cls, value: str | None) -> str | None:
        if value and (value.startswith("/") or value.endswith("/") or "+" in value or "#" in value):
            raise ValueError(
                'device_base must be a topic without wildcards or a leading or trailing / ("" for none)'
            )
        return value


def _deadband_key(key: str) -> str:
    if key.count(".") != 1 or not all(key.split(".")):
        raise ValueError("the key is device.point or template.point")
    return key


def _deadband_value(value: Any) -> Any:
    """A number (not a bool, not quoted), finite and >= 0: checked here so the message is one."""
    band = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            band = float(value)
        except OverflowError:  # an int beyond any float
            band = math.inf
    if not math.isfinite(band) or band < 0:
        raise ValueError(f"a deadband is a number >= 0 in the point's unit, got {value!r}")
    return band


DeadbandKey = Annotated[str, AfterValidator(_deadband_key)]
"""`device.point` or `template.point` in `history.deadband` (which names exist: the resolver)."""
DeadbandValue = Annotated[float, BeforeValidator(_deadband_value)]


class HistoryConfig(Strict):
    """Local history (`gateway.storage.history`): raw readings, then 1-minute aggregates."""

    raw_window: Duration = 48 * 3600.0
    aggregate_window: Duration = 365 * 86400.0
    max_mb: float = Field(default=1024.0, ge=1)
    commit_interval: Duration = 30.0  # what a power cut may lose of the readings
    heartbeat: Duration = 600.0  # an unmoved point is stored at least this often
    deadband_percent: float = Field(default=0.1, ge=0, le=100)  # of a point's range, by default
    deadband: dict[DeadbandKey, DeadbandValue] = {}  # names checked in `deadband_overrides`

    @model_validator(mode="after")
    def _windows(self) -> HistoryConfig:
        if self.raw_window < 60:
            raise ValueError("raw_window must be at least 1m")
        if not 0.1 <= self.commit_interval <= 300:
            raise ValueError("commit_interval must be between 100ms and 5m")
        if self.heartbeat < 1:
            raise ValueError("heartbeat must be at least 1s")
        if self.aggregate_window < self.raw_window:
            raise ValueError("aggregate_window must be at least as long as raw_window")
        return self


class InfluxConfig(Strict):
    """InfluxDB v2 export (`gateway.export.influx`) through a disk-backed store-and-forward queue."""

    url: str
    org: str
    bucket: str
    token_file: str | None = None
    queue_max_mb: float = Field(default=256.0, ge=1)
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    flush_interval: Duration = 1.0
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _positive(self) -> InfluxConfig:
        if self.flush_interval <= 0 or self.timeout <= 0:
            raise ValueError("flush_interval and timeout must be positive")
        return self


class ConsoleConfig(Strict):
    """The web console and HTTP API (PRODUCT §7). Loopback by default: exposing it is a decision."""

    listen: str = "127.0.0.1:8080"
    enabled: bool = True
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    public_url: str | None = None  # how people reach the console; notifications link to it

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        host = rest.split("/", 1)[0]
        if scheme not in ("http", "https") or not sep or not host or any(c in value for c in " ?#"):
            raise ValueError("public_url must be an http:// or https:// address without ? or #")
        return value.rstrip("/")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


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


class TicketTarget(Strict):
    """Service targets of one urgency: respond within, resolve within (or `next_morning`)."""

    respond: Duration | None = None
    resolve: float | Literal["next_morning"] | None = None

    @field_validator("resolve", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        if value is None or value == "next_morning":
            return value
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError(
                f"resolve is a duration such as 4h or 2d, or next_morning; got {value!r}"
            ) from None


class TicketsConfig(Strict):
    """Tickets (PRODUCT §5): targets per urgency over the defaults, and working with alarms."""

    targets: dict[Urgency, TicketTarget] = {}
    morning: str = "08:00"  # what "by the next morning" means, site time
    out_of_service_while_working: bool = True  # alarms not life-safety, while in_progress
    mute_limit: Duration = Field(default=4 * 3600.0, gt=0)  # at most this long (PRODUCT §9)

    @field_validator("morning")
    @classmethod
    def _morning(cls, value: str) -> str:
        if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
            raise ValueError(f"morning must be a time of day HH:MM, got {value!r}")
        return value


# ---------------------------------------------------------------------- playbooks (PRODUCT §11)

JOIN_WITHIN = 600.0
"""A second trigger of the same playbook within this many seconds joins the open incident."""

Role = Literal["viewer", "engineer", "admin"]


class StepSpec(Strict):
    """One step: what to do, and how long after the incident opened it must be done."""

    id: str = Field(pattern=ID_PATTERN)
    text: Text
    within: Duration | None = None  # no limit: the step has no due time
    role: Role = "engineer"


class TriggerSpec(Strict):
    """Which alarms open an incident: rule ids (any device's) and/or alarm ids (`device.rule`)."""

    rules: list[str] = []
    alarms: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _singular(cls, value: Any) -> Any:
        """`{rule: entrapment}` and `{alarm: lift-1.entrapment}` read as one-element lists."""
        if isinstance(value, dict):
            value = dict(value)
            for one, many in (("rule", "rules"), ("alarm", "alarms")):
                if one in value:
                    value[many] = [*value.get(many, []), value.pop(one)]
        return value


class PlaybookSpec(Strict):
    """A playbook as written (built-in file or site file); a site entry may set only some keys."""

    id: str = Field(pattern=ID_PATTERN)
    title: Text | None = None
    trigger: TriggerSpec | None = None
    steps: list[StepSpec] | None = None
    join_within: Duration = JOIN_WITHIN
    enabled: bool = True


class SiteFile(Strict):
    """The whole site file, as written; see `gateway.config.site.Site` for the resolved form."""

    site: SiteInfo
    storage: StorageConfig = StorageConfig()
    history: HistoryConfig = HistoryConfig()
    mqtt: MqttConfig = MqttConfig()
    influx: InfluxConfig | None = None
    console: ConsoleConfig = ConsoleConfig()
    modbus: list[ModbusBus] = []
    devices: list[DeviceSpec]
    rules: list[RuleSpec] = []
    maintenance: list[PlanSpec] = []
    tickets: TicketsConfig = TicketsConfig()  # service targets per urgency, alarms during work
    alarms: AlarmsConfig = AlarmsConfig()  # chattering and flood thresholds
    notify: NotifyConfig = NotifyConfig()  # notification channels and escalation per priority
    playbooks: list[PlaybookSpec] = []  # overrides of built-in playbooks by id, or new ones (§11)
