"""A resolved site: devices with their templates applied, every rule bound to its device.

`config.site.load_site` builds a `Site`; everything else in the gateway is built from one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from config.errors import ConfigIssue
from config.models import (
    CommLossSpec,
    DeviceSpec,
    ModbusBus,
    ModbusPoint,
    MqttPoint,
    PlanSpec,
    Priority,
    SiteFile,
    Template,
    Text,
    Urgency,
)
from config.playbooks import Playbook

COMM_LOSS = "comm_loss"
"""The rule every device has: no answer for N polls or T seconds (PRODUCT §3)."""
COMM_LOSS_ADVICE = Text(
    zh="检查设备供电、通讯线和网关到设备的连接",
    en="Check the device's power, its cable and the link to it",
)


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule bound to one device, with every option resolved."""

    device: str
    id: str
    when: str
    priority: Priority
    message: Text
    for_: float = 0.0
    clear_for: float = 0.0
    deadband: float = 0.0
    shelvable: bool = True
    ticket: Urgency | None = None
    life_safety: bool = False  # never suppressed, muted by work or shelved by default (§9)
    advice: Text | None = None  # what to do first, shown beside the alarm
    follows: tuple[str, ...] = ()  # points whose change while active re-renders the message
    zones: tuple[tuple[int, Text], ...] = ()  # the device's zone names, for `{zones:bits}`

    @property
    def alarm_id(self) -> str:
        return f"{self.device}.{self.id}"


@dataclass(frozen=True)
class Device:
    """A device with its template applied: every point, rule and plan it has."""

    spec: DeviceSpec
    points: dict[str, ModbusPoint | MqttPoint]
    rules: list[Rule]
    plans: list[PlanSpec]
    template: Template | None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def measurement(self) -> str:
        """InfluxDB measurement (PRODUCT §2): the template id, or `device`."""
        return self.template.id if self.template else "device"

    @property
    def comm_loss_rule(self) -> Rule:
        return next(r for r in self.rules if r.id == COMM_LOSS)


@dataclass(frozen=True)
class Site:
    """A validated site: what every other part of the gateway is built from."""

    path: Path
    file: SiteFile
    devices: dict[str, Device]
    buses: dict[str, ModbusBus]
    warnings: list[ConfigIssue] = field(default_factory=list)
    playbooks: dict[str, Playbook] = field(default_factory=dict)  # built-ins + site (§11)

    @property
    def id(self) -> str:
        return self.file.site.id

    @property
    def topic_prefix(self) -> str:
        return self.file.mqtt.topic_prefix or f"fgw/{self.id}"

    @property
    def device_base(self) -> str:
        """`mqtt.device_base`, by default `{topic_prefix}/devices`: one building per broker subtree."""
        base = self.file.mqtt.device_base
        return f"{self.topic_prefix}/devices" if base is None else base

    def device_topic(self, device: Device) -> str:
        """The device's full topic: `mqtt.topic` under `device_base`, or absolute with a leading `/`.

        Raises:
            ValueError: the device is not an MQTT device.
        """
        if device.spec.mqtt is None:
            raise ValueError(f"device {device.id} is not an MQTT device")
        return device_topic(self.device_base, device.spec.mqtt.topic)

    @property
    def storage_dir(self) -> Path:
        """The storage folder, relative paths taken from the site file's folder."""
        return (self.path.parent / self.file.storage.path).resolve()

    def rules(self) -> Iterable[Rule]:
        for device in self.devices.values():
            yield from device.rules

    def bus_rules(self) -> list[Rule]:
        """One alarm per Modbus bus of two devices or more: the whole bus is silent (PRODUCT §10).

        Its device is the bus's `alarm_device` (`modbus:BUS`); the bus's devices depend on it, so
        their comm_loss (and anything they cause) is linked to the bus alarm as the root cause
        rather than shown as many alarms.
        """
        rules = []
        for bus_id, devices in self.bus_devices().items():
            if len(devices) < 2:
                continue
            where = self.buses[bus_id].endpoint
            rules.append(
                Rule(
                    device=self.buses[bus_id].alarm_device,
                    id=COMM_LOSS,
                    when="",
                    priority="high",
                    message=Text(
                        zh=f"总线 {bus_id}（{where}）无应答：检查转换器、其网络或电源",
                        en=f"Bus {bus_id} ({where}) silent: no unit answers; check the"
                        " converter, its network or its power",
                    ),
                )
            )
        return rules

    def bus_devices(self) -> dict[str, list[str]]:
        """Modbus bus id -> the ids of its devices."""
        result: dict[str, list[str]] = {}
        for device in self.devices.values():
            if device.spec.modbus is not None:
                result.setdefault(device.spec.modbus.bus, []).append(device.id)
        return result

    def depends_on(self) -> dict[str, list[str]]:
        """Device -> what it depends on: its `depends_on`, and first its bus when the bus has an
        alarm (a silent bus is the root cause before a supply on the same bus).

        A life-safety comm_loss (a fire panel's, a lift's: PRODUCT §9) is linked too: the engine
        never suppresses it, it stays active and says `during` the bus alarm.
        """
        result = {d.id: list(d.spec.depends_on) for d in self.devices.values()}
        for bus_id, devices in self.bus_devices().items():
            if len(devices) >= 2:
                for device_id in devices:
                    result[device_id].insert(0, self.buses[bus_id].alarm_device)
        return result


def life_safety_of(priority: str, stated: bool | None) -> bool:
    """PRODUCT §9: a rule is life-safety when it says so; a critical one unless it says `false`."""
    return stated if stated is not None else priority == "critical"


def shelvable_of(life_safety: bool, stated: bool | None) -> bool:
    """A rule is shelvable unless it says `false`; a life-safety one only if it says `true`."""
    return stated if stated is not None else not life_safety


def device_topic(base: str, topic: str) -> str:
    """A device topic resolved: a leading `/` makes it absolute, else it goes under `base`."""
    if topic.startswith("/"):
        return topic[1:]
    return f"{base}/{topic}" if base else topic


def template_rules(
    device_id: str, template: Template | None, zones: tuple[tuple[int, Text], ...] = ()
) -> list[Rule]:
    """The rules a device gets before site overrides: `comm_loss`, then its template's rules.

    The template's `comm_loss:` block sets the priority of its devices' comm_loss (a lift's and a
    fire panel's are critical, so life-safety): data, not a code path per template.
    """
    comm = template.comm_loss if template else CommLossSpec()
    comm_safe = life_safety_of(comm.priority, comm.life_safety)
    rules = [
        Rule(
            device=device_id,
            id=COMM_LOSS,
            when="",
            priority=comm.priority,
            message=Text(zh="设备通讯中断", en="Device not answering (communication lost)"),
            shelvable=shelvable_of(comm_safe, comm.shelvable),
            life_safety=comm_safe,
            advice=comm.advice or COMM_LOSS_ADVICE,
        )
    ]
    for spec in template.rules if template else []:
        assert spec.when is not None and spec.priority is not None  # templates are validated
        safe = life_safety_of(spec.priority, spec.life_safety)
        rules.append(
            Rule(
                device=device_id,
                id=spec.id,
                when=spec.when,
                priority=spec.priority,
                message=spec.message or Text(zh=spec.id, en=spec.id),
                for_=spec.for_,
                clear_for=spec.clear_for,
                deadband=spec.deadband,
                shelvable=shelvable_of(safe, spec.shelvable),
                ticket=spec.ticket,
                life_safety=safe,
                advice=spec.advice,
                follows=tuple(spec.message_follows),
                zones=zones,
            )
        )
    return rules
