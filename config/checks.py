"""The checks of a site file that span sections: dependencies, rule expressions against real points,
messages, plans' meters, and warnings about exposure and secrets.

`SiteChecks` collects every issue with its file and line before anything fails.
"""

from __future__ import annotations

import string
from pathlib import Path

from config.errors import ConfigIssue, Loc
from config.models import ModbusPoint, MqttPoint, PlanSpec, SiteFile
from config.resolved import COMM_LOSS, Device
from config.yamlsource import YamlDocument
from ground.expr import ExpressionError, parse_expression


class SiteChecks:
    """Cross-section checks of one site file, collecting every issue before failing."""

    def __init__(self, doc: YamlDocument, site_file: SiteFile) -> None:
        self.doc = doc
        self.file = site_file
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self.rule_locs: dict[tuple[str, str], Loc] = {}
        self._parsed: dict[str, list[str] | ExpressionError] = {}
        self._fields: dict[str, list[str] | str] = {}

    def error(self, loc: Loc, message: str) -> None:
        """An issue that makes the site file unusable (`load_site` raises with every one)."""
        self.issues.append(self.doc.issue(loc, message))

    def warn(self, loc: Loc, message: str) -> None:
        """An issue the site can run with (`Site.warnings`, shown by `fgw check`)."""
        self.warnings.append(self.doc.issue(loc, message, warning=True))

    def check_dependencies(self, devices: dict[str, Device]) -> None:
        """Every `depends_on` names another known device, and no chain comes back to its start."""
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

    def check_plan_points(self, plan: PlanSpec, device: Device, here: Loc) -> None:
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

    def check_rules(self, device: Device, devices: dict[str, Device], index: int) -> None:
        for rule in device.rules:
            if rule.id == COMM_LOSS:
                continue
            loc = self.rule_locs.get((device.id, rule.id))
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

    def safety_warnings(self) -> None:
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
