"""The Modbus driver (TCP, RTU, RTU over TCP): plan -> wire -> decode -> `Reading`.

Modules, each knowing only the one below: `decode` (words to values, pure, the reference),
`plan` (points to read requests, pure), `blockdecode` (a request's response to readings, compiled
once per request from `decode`'s rules), `bisect` (learning to read around refused registers,
pure), `budget` (a serial line's time budget, pure), `health` (comm loss, pure), `frames` (MBAP
and RTU bytes, pure), `connection` (one connection: a byte stream, its framing, timeouts), `link`
(a bus's endpoint: connections shared by its devices), `device` (one poll of one device), `poller`
(the bus driver, schedules, the bus alarm, `poll_once`). docs/wiring.md is the user's side.
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
