"""Loading a site file into a resolved `Site`: templates applied, overrides merged, everything checked.

`load_site` either returns a `Site` in which every device, point and rule is known to be consistent,
or raises `SiteError` listing every problem with its file and line. Nothing is discovered at 3 a.m.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from config.checks import SiteChecks
from config.deadband_overrides import check_deadband_overrides, check_point_deadbands
from config.errors import Loc, SiteError
from config.models import BaseloadRise, ModbusBus, ModbusPoint, MqttPoint, RuleSpec, SiteFile, Text
from config.playbooks import resolve_playbooks
from config.resolved import (
    COMM_LOSS,
    COMM_LOSS_ADVICE,
    Device,
    Rule,
    Site,
    device_topic,
    life_safety_of,
    shelvable_of,
    template_rules,
)
from config.templates import load_template, template_names
from config.validation import issues_from_validation
from config.yamlsource import load_yaml

__all__ = [
    "COMM_LOSS",
    "COMM_LOSS_ADVICE",
    "Device",
    "Rule",
    "Site",
    "device_topic",
    "life_safety_of",
    "load_site",
    "shelvable_of",
    "template_rules",
]


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


class _Resolver(SiteChecks):
    """Template resolution and site overrides; the cross-section checks are `SiteChecks`'."""

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
        self.check_dependencies(devices)
        self._site_rules(devices)
        self._baseload_rule_ids(devices)
        self._site_plans(devices)
        first_index: dict[str, int] = {}
        for i, spec in enumerate(self.file.devices):
            first_index.setdefault(spec.id, i)
        for device in devices.values():
            self.check_rules(device, devices, first_index[device.id])
        all_rules = [r for d in devices.values() for r in d.rules]
        playbooks = resolve_playbooks(
            self.file.playbooks,
            {r.id for r in all_rules},
            {r.alarm_id for r in all_rules},
            self.error,
        )
        if self.issues:
            raise SiteError(sorted(self.issues, key=lambda issue: issue.line or 0))
        self.safety_warnings()
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
            self.rule_locs[(spec.device, spec.id)] = here

    def _baseload_rule_ids(self, devices: dict[str, Device]) -> None:
        """A meter's night baseload alarm owns its alarm id: no rule of the meter may take it."""
        for i, spec in enumerate(self.file.devices):
            device = devices.get(spec.id)
            if spec.baseload_rise is None or device is None or device.spec is not spec:
                continue
            if any(rule.id == BaseloadRise.RULE for rule in device.rules):
                self.error(
                    ("devices", i, "baseload_rise"),
                    f"{spec.id} has a rule {BaseloadRise.RULE!r} already: the night baseload "
                    "alarm takes that id (rename the rule)",
                )

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
                self.check_plan_points(merged, device, here)
                device.plans[:] = [p for p in device.plans if p.id != plan.id]
                if merged.enabled:
                    device.plans.append(merged)


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
