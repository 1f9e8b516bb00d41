"""Generated sites of any size for benchmarks: N devices of the built-in templates on one bus."""

from __future__ import annotations

from pathlib import Path

MODBUS_TEMPLATES = ("booster_pump", "energy_meter", "lift", "fire_panel")


def modbus_site_yaml(
    devices: int, *, mqtt_port: int = 1883, modbus_port: int = 5020, poll: str = "1s",
    site_id: str = "bench", storage: str = "./state", max_connections: int = 1,
) -> str:  # fmt: skip
    """A site with `devices` Modbus devices cycling through the templates, units 1..N, sharing
    `max_connections` connections to their bus."""
    if not 1 <= devices <= 247:
        raise ValueError("one Modbus bus holds units 1..247")
    lines = [
        f"site: {{id: {site_id}, timezone: Asia/Shanghai}}",
        f"storage: {{path: {storage}}}",
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}",
        "modbus:",
        f"  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus_port}, timeout: 500ms,"
        f" max_connections: {max_connections}}}",
        "devices:",
    ]
    for unit in range(1, devices + 1):
        template = MODBUS_TEMPLATES[(unit - 1) % len(MODBUS_TEMPLATES)]
        lines.append(
            f"  - {{id: {template.replace('_', '-')}-{unit}, template: {template}, "
            f"modbus: {{bus: bus, unit: {unit}}}, poll: {poll}}}"
        )
    return "\n".join(lines) + "\n"


UNITS_PER_BUS = 200
"""Devices per generated bus (a TCP bus holds units 1..247; leave room like a real plant room)."""


def estate_yaml(
    devices: int, *, mqtt_port: int, modbus_ports: list[int], poll: str = "1s",
    site_id: str = "bench", storage: str = "./state", publish_readings: bool = False,
    max_connections: int = 1,
) -> str:  # fmt: skip
    """A large site: `devices` Modbus devices over `len(modbus_ports)` TCP buses (each its own
    server and port, its devices sharing `max_connections` connections), cycling through the
    templates; at most `UNITS_PER_BUS` units a bus."""
    if devices > UNITS_PER_BUS * len(modbus_ports):
        raise ValueError(f"{devices} devices need {-(-devices // UNITS_PER_BUS)} buses")
    readings = ", publish_readings: true" if publish_readings else ""
    lines = [
        f"site: {{id: {site_id}, timezone: Asia/Shanghai}}",
        f"storage: {{path: {storage}}}",
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}{readings}}}",
        "modbus:",
    ]
    lines += [
        f"  - {{id: bus-{b}, transport: tcp, host: 127.0.0.1, port: {port}, timeout: 500ms,"
        f" max_connections: {max_connections}}}"
        for b, port in enumerate(modbus_ports, 1)
    ]
    lines.append("devices:")
    for n in range(devices):
        template = MODBUS_TEMPLATES[n % len(MODBUS_TEMPLATES)]
        bus, unit = n // UNITS_PER_BUS + 1, n % UNITS_PER_BUS + 1
        lines.append(
            f"  - {{id: {template.replace('_', '-')}-{n + 1}, template: {template}, "
            f"modbus: {{bus: bus-{bus}, unit: {unit}}}, poll: {poll}}}"
        )
    return "\n".join(lines) + "\n"


def write_site(folder: Path, devices: int, **options: object) -> Path:
    path = folder / "site.yaml"
    path.write_text(modbus_site_yaml(devices, **options))  # type: ignore[arg-type]
    return path
