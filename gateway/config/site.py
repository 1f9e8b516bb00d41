"""Loading a site file into a resolved `Site`: templates applied, overrides merged, everything checked.

`load_site` either returns a `Site` in which every device, point and rule is known to be consistent,
or raises `SiteError` listing every problem with its file and line. Nothing is discovered at 3 a.m.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from gateway.config.deadband_overrides import check_deadband_overrides, check_point_deadbands
from gateway.config.errors import ConfigIssue, Loc, SiteError
from gateway.config.models import (
    CommLossSpec,
    DeviceSpec,
    ModbusBus,
    ModbusPoint,
    MqttPoint,
    PlanSpec,
    Priority,
    RuleSpec,
    SiteFile,
    Template,
    Text,
    Urgency,
)
from gateway.config.playbooks import Playbook, resolve_playbooks
from gateway.config.templates import load_template, template_names
from gateway.config.validation import issues_from_validation
from gateway.config.yamlsource import YamlDocument, load_yaml
from rules.expr import ExpressionError, parse_expression

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


def load_site(path: str | Path, text: str | None = None) -> Site:
    """Read, validate and resolve a site file.

    Raises:
        SiteError: with every issue found, each naming file, line and field.
    """
    doc = load_yaml(path, text)
    if not isinstance(doc.data, dict):
        raise SiteError([doc.issue((), "a site file is a mapping (site:, devices:, …)")])
    try:
        site_file = SiteFile.model_validate(doc.data)
    except ValidationError as exc:
        raise SiteError(issues_from_validation(doc, exc, SiteFile)) from exc
    return _Resolver(doc, site_file).resolve()


class _Resolver:
    """Cross-section checks and template resolution, collecting every issue before failing."""

    def __init__(self, doc: YamlDocument, site_file: SiteFile) -> None:
        self.doc = doc
        self.file = site_file
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self._rule_locs: dict[tuple[str, str], Loc] = {}
        self._parsed: dict[str, list[str] | ExpressionError] = {}
        self._fields: dict[str, list[str] | str] = {}

    def error(self, loc: Loc, message: str) -> None:
        self.issues.append(self.doc.issue(loc, message))

    def warn(self, loc: Loc, message: str) -> None:
        self.warnings.append(self.doc.issue(loc, message, warning=True))

    def resolve(self) -> Site:
        buses = self._buses()
        devices = self._devices(buses)
        check_point_deadbands(self.file.devices, self.error)
        if self.file.history.deadband:
            check_deadband_overrides(
                self.file.history.deadband,
                {d.id: d.points for d in devices.values()},
                {d.id: d.template.id if d.template else None for d in devices.values()},
                self.error,
                self.warn,
            )
        self._dependencies(devices)
        self._site_rules(devices)
        self._site_plans(devices)
        first_index: dict[str, int] = {}
        for i, spec in enumerate(self.file.devices):
            first_index.setdefault(spec.id, i)
        for device in devices.values():
            self._check_rules(device, devices, first_index[device.id])
        all_rules = [r for d in devices.values() for r in d.rules]
        playbooks = resolve_playbooks(
            self.file.playbooks,
            {r.id for r in all_rules},
            {r.alarm_id for r in all_rules},
            self.error,
        )
        if self.issues:
            raise SiteError(sorted(self.issues, key=lambda issue: issue.line or 0))
        self._safety_warnings()
        return Site(Path(self.doc.path), self.file, devices, buses, self.warnings, playbooks)

    # ------------------------------------------------------------------ buses and devices

    def _buses(self) -> dict[str, ModbusBus]:
        buses: dict[str, ModbusBus] = {}
        for i, bus in enumerate(self.file.modbus):
            if bus.id in buses:
                self.error(("modbus", i, "id"), f"duplicate bus id {bus.id!r}")
            buses[bus.id] = bus
        return buses

    def _devices(self, buses: dict[str, ModbusBus]) -> dict[str, Device]:
        devices: dict[str, Device] = {}
        units: dict[tuple[str, int], str] = {}
        for i, spec in enumerate(self.file.devices):
            here: Loc = ("devices", i)
            if spec.id in devices:
                self.error((*here, "id"), f"duplicate device id {spec.id!r}")
                continue
            template = None
            if spec.template is not None:
                try:
                    template = load_template(spec.template)
                except KeyError:
                    known = ", ".join(template_names())
                    self.error((*here, "template"), f"unknown template {spec.template!r} ({known})")
                    continue
            protocol = "modbus" if spec.modbus is not None else "mqtt"
            if template is not None and template.protocol != protocol:
                self.error(
                    (*here, protocol),
                    f"template {template.id} is read over {template.protocol}, not {protocol}",
                )
                continue
            if spec.modbus is not None:
                bus = spec.modbus.bus
                if bus not in buses:
                    known = ", ".join(buses) or "none defined under modbus:"
                    self.error((*here, "modbus", "bus"), f"unknown bus {bus!r} (buses: {known})")
                elif (bus, spec.modbus.unit) in units:
                    other = units[(bus, spec.modbus.unit)]
                    self.error(
                        (*here, "modbus", "unit"),
                        f"unit {spec.modbus.unit} on bus {bus} is already device {other!r}",
                    )
                else:
                    units[(bus, spec.modbus.unit)] = spec.id
            points = dict(template.points) if template else {}
            wire = ModbusPoint if protocol == "modbus" else MqttPoint
            for name, point in spec.points.items():
                if not isinstance(point, wire):
                    self.error(
                        (*here, "points", name),
                        f"a {protocol} device's point needs "
                        + ("register: and address:" if protocol == "modbus" else "topic:/field:"),
                    )
                if not name.isidentifier():
                    self.error((*here, "points", name), "a point name must be an identifier")
                points[name] = point
            if not points:
                self.error((*here, "points"), "a device without template needs points:")
            if spec.zones and "zones" not in points:
                self.error((*here, "zones"), "zone names need a device with a zones point")
            rules = template_rules(spec.id, template, tuple(sorted(spec.zones.items())))
            plans = list(template.plans) if template else []
            devices[spec.id] = Device(spec, points, rules, plans, template)
        return devices

    def _dependencies(self, devices: dict[str, Device]) -> None:
        for i, spec in enumerate(self.file.devices):
            for j, other in enumerate(spec.depends_on):
                if other == spec.id:
                    self.error(("devices", i, "depends_on", j), "a device cannot depend on itself")
                elif other not in devices:
                    self.error(("devices", i, "depends_on", j), f"unknown device {other!r}")
        # cycles would make suppression chase its own tail
        graph = {s.id: [d for d in s.depends_on if d in devices] for s in self.file.devices}
        for i, spec in enumerate(self.file.devices):
            seen, stack = set(), list(graph.get(spec.id, []))
            while stack:
                node = stack.pop()
                if node == spec.id:
                    self.error(("devices", i, "depends_on"), "depends_on forms a cycle")
                    break
                if node not in seen:
                    seen.add(node)
                    stack.extend(graph.get(node, []))

    # ------------------------------------------------------------------ rules and plans

    def _site_rules(self, devices: dict[str, Device]) -> None:
        seen: set[tuple[str, str]] = set()
        for i, spec in enumerate(self.file.rules):
            here: Loc = ("rules", i)
            if spec.device is None:
                self.error((*here, "device"), "a site rule names its device")
                continue
            device = devices.get(spec.device)
            if device is None:
                self.error((*here, "device"), f"unknown device {spec.device!r}")
                continue
            if (spec.device, spec.id) in seen:
                self.error((*here, "id"), f"rule {spec.id!r} of {spec.device} is defined twice")
                continue
            seen.add((spec.device, spec.id))
            base = next((r for r in device.rules if r.id == spec.id), None)
            if base is None and (spec.when is None or spec.priority is None):
                self.error(
                    (*here, "when" if spec.when is None else "priority"),
                    f"a new rule needs when: and priority: ({spec.device} has no rule {spec.id!r})",
                )
                continue
            if base is not None and base.id == COMM_LOSS and spec.when is not None:
                self.error((*here, "when"), "comm_loss is built in: only its options can change")
                continue
            priority = spec.priority or base.priority  # type: ignore[union-attr]
            safe = _overridden_life_safety(spec, base, priority)
            if spec.life_safety is False and priority == "critical":
                self.warn(
                    (*here, "life_safety"),
                    f"critical rule {spec.id!r} of {spec.device} is not life-safety: "
                    "it can be suppressed by its supply, muted by work and shelved",
                )
            rule = Rule(
                device=spec.device,
                id=spec.id,
                when=spec.when if spec.when is not None else base.when,  # type: ignore[union-attr]
                priority=priority,
                message=spec.message or (base.message if base else Text(zh=spec.id, en=spec.id)),
                for_=spec.for_ if "for_" in spec.model_fields_set or base is None else base.for_,
                clear_for=_pick(spec, base, "clear_for"),
                deadband=_pick(spec, base, "deadband"),
                shelvable=spec.shelvable if spec.shelvable is not None else
                (base.shelvable if base and base.life_safety == safe else not safe),
                ticket=spec.ticket if "ticket" in spec.model_fields_set else
                (base.ticket if base else None),
                life_safety=safe,
                advice=spec.advice if spec.advice is not None else (base.advice if base else None),
                follows=tuple(spec.message_follows) if "message_follows" in spec.model_fields_set
                else (base.follows if base else ()),
                zones=tuple(sorted(device.spec.zones.items())),
            )  # fmt: skip
            device.rules[:] = [r for r in device.rules if r.id != spec.id]
            if spec.enabled:
                device.rules.append(rule)
            self._rule_locs[(spec.device, spec.id)] = here

    def _site_plans(self, devices: dict[str, Device]) -> None:
        for i, plan in enumerate(self.file.maintenance):
            here: Loc = ("maintenance", i)
            targets = plan.devices or []
            if not targets:
                self.error((*here, "devices"), "a site plan names its devices")
            for j, device_id in enumerate(targets):
                device = devices.get(device_id)
                if device is None:
                    self.error((*here, "devices", j), f"unknown device {device_id!r}")
                    continue
                base = next((p for p in device.plans if p.id == plan.id), None)
                triggers = (plan.every, plan.cron, plan.every_run_hours, plan.every_count)
                if base is None and not any(t is not None for t in triggers):
                    self.error(here, "a plan needs every:, cron:, every_run_hours: or every_count:")
                    continue
                merged = plan if base is None else base.model_copy(
                    update={k: getattr(plan, k) for k in plan.model_fields_set if k != "devices"}
                )  # fmt: skip
                self._check_plan_points(merged, device, here)
                device.plans[:] = [p for p in device.plans if p.id != plan.id]
                if merged.enabled:
                    device.plans.append(merged)

    def _check_plan_points(self, plan: PlanSpec, device: Device, here: Loc) -> None:
        if plan.every_count is not None and plan.every_count.point not in device.points:
            self.error(
                (*here, "every_count", "point"),
                f"{device.id} has no point {plan.every_count.point!r}",
            )
        if plan.every_run_hours is not None and not (
            "run_hours" in device.points or "running" in device.points
        ):
            self.error(
                (*here, "every_run_hours"),
                f"{device.id} has neither a run_hours nor a running point to count hours from",
            )

    def _names_in(self, when: str) -> list[str] | ExpressionError:
        """The sorted names `when` reads, or why it does not parse: parsed once per distinct text
        (a template's rules are the same text on every device that uses it)."""
        found = self._parsed.get(when)
        if found is None:
            try:
                found = sorted(parse_expression(when).names)
            except ExpressionError as exc:
                found = exc
            self._parsed[when] = found
        return found

    def _check_rules(self, device: Device, devices: dict[str, Device], index: int) -> None:
        for rule in device.rules:
            if rule.id == COMM_LOSS:
                continue
            loc = self._rule_locs.get((device.id, rule.id))
            when_loc: Loc = (*loc, "when") if loc else ("devices", index, "template")
            origin = "" if loc else f"template rule {rule.id}: "
            names = self._names_in(rule.when)
            if isinstance(names, ExpressionError):
                self.error(when_loc, f"{origin}{names}")
                continue
            for name in names:
                if "." in name:
                    other, point = name.split(".", 1)
                    if other not in devices:
                        self.error(when_loc, f"{origin}unknown device {other!r} in {name!r}")
                    elif point not in devices[other].points:
                        self.error(when_loc, f"{origin}{other} has no point {point!r}")
                elif name not in device.points:
                    known = ", ".join(sorted(device.points))
                    self.error(when_loc, f"{origin}{device.id} has no point {name!r} ({known})")
            follows_loc: Loc = (*loc, "message_follows") if loc else when_loc
            for point in rule.follows:
                if point not in names:
                    self.error(follows_loc, f"{origin}message_follows: {point!r} is not in when:")
            message_loc: Loc = (*loc, "message") if loc else when_loc
            for text in (rule.message.zh, rule.message.en):
                problem = self._message_problem(text, device.points)
                if problem:
                    self.error(message_loc, f"{origin}{problem}")

    def _message_problem(self, text: str, points: dict[str, ModbusPoint | MqttPoint]) -> str | None:
        """A message may only interpolate point names, never attributes or indexes of them
        (each distinct text is parsed once)."""
        fields = self._fields.get(text)
        if fields is None:
            fields = self._fields[text] = _message_fields(text)
        if isinstance(fields, str):
            return fields
        for field_name in fields:
            if not field_name.isidentifier():
                return f"message: {{{field_name}}} must be a plain point name"
            if field_name not in points:
                return f"message: {{{field_name}}} is not a point of the device"
        return None

    def _safety_warnings(self) -> None:
        mqtt = self.file.mqtt
        if mqtt.username is None and mqtt.host not in ("127.0.0.1", "localhost", "::1"):
            self.warn(("mqtt", "host"), "anonymous MQTT to a broker that is not on this machine")
        listen_host = self.file.console.listen.rsplit(":", 1)[0].strip("[]")
        if listen_host not in ("127.0.0.1", "localhost", "::1"):
            self.warn(("console", "listen"), "the console listens beyond this machine without TLS")
        self._secret_warnings()

    def _secret_warnings(self) -> None:
        """Credentials that travel in clear, TLS that trusts too much, secret files others can read."""
        local = ("127.0.0.1", "localhost", "::1")
        mqtt, influx = self.file.mqtt, self.file.influx
        if mqtt.username is not None and mqtt.tls is None and mqtt.host not in local:
            self.warn(
                ("mqtt", "tls"), "the MQTT password travels in clear to a remote broker: set tls"
            )
        if mqtt.tls is not None and mqtt.tls.ca_file is None:
            self.warn(
                ("mqtt", "tls"), "tls without ca_file trusts every public CA: name the broker's CA"
            )
        if mqtt.tls is not None and mqtt.tls.insecure:
            self.warn(("mqtt", "tls", "insecure"), "the broker's certificate name is not checked")
        if influx is not None:
            host = influx.url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
            if influx.token_file and influx.url.startswith("http://") and host not in local:
                self.warn(("influx", "url"), "the InfluxDB token travels in clear: use https://")
        files = [(("mqtt", "password_file"), mqtt.password_file)]
        if influx is not None:
            files.append((("influx", "token_file"), influx.token_file))
        for loc, name in files:
            if name is None:
                continue
            path = Path(name).expanduser()
            path = path if path.is_absolute() else Path(self.doc.path).parent / path
            try:
                mode = path.stat().st_mode
            except OSError:
                self.warn(loc, f"{path} cannot be read")
                continue
            if mode & 0o077:
                self.warn(
                    loc, f"{path} is readable by other users (mode {mode & 0o777:o}): chmod 600"
                )


def _overridden_life_safety(spec: RuleSpec, base: Rule | None, priority: str) -> bool:
    """A site rule's life-safety: as stated; else the rule it overrides keeps its own unless the
    override makes it critical (a lower priority alone never takes life-safety away)."""
    if spec.life_safety is not None:
        return spec.life_safety
    if base is None:
        return priority == "critical"
    return base.life_safety or priority == "critical"


def _pick(spec: RuleSpec, base: Rule | None, name: str) -> float:
    if name in spec.model_fields_set or base is None:
        return float(getattr(spec, name))
    return float(getattr(base, name))


def _message_fields(text: str) -> list[str] | str:
    """The fields a message interpolates, in order, or the problem that makes it unusable."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        return f"message: {exc}"
    fields = []
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier():
            fields.append(field_name)
            return fields  # the first bad field ends the check, as it ends formatting
        fields.append(field_name)
    return fields
