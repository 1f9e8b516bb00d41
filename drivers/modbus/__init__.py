"""The Modbus driver (TCP and RTU): plan -> wire -> decode -> `Reading`.

Modules, each knowing only the one below: `decode` (words to values, pure, the reference),
`plan` (points to read requests, pure), `blockdecode` (a request's response to readings, compiled
once per request from `decode`'s rules), `health` (comm loss, pure), `link` (pymodbus clients,
timeouts), `device` (one poll of one device), `poller` (the bus driver, schedules, `poll_once`).
"""

from drivers.modbus.decode import decode_point
from drivers.modbus.health import DeviceHealth, DeviceStats, HealthChange
from drivers.modbus.plan import ReadBlock, plan_reads
from drivers.modbus.poller import ModbusBusDriver, poll_once, poll_site_once

__all__ = [
    "DeviceHealth",
    "DeviceStats",
    "HealthChange",
    "ModbusBusDriver",
    "ReadBlock",
    "decode_point",
    "plan_reads",
    "poll_once",
    "poll_site_once",
]
