"""`/metrics` in the Prometheus text format: what an operator graphs and alerts on about the gateway.

Per device: polls, errors, online. Flow: readings total and per second, alarm transitions, alarms by
state and by priority. Queues: readings waiting for the engine, MQTT outbox, live-stream clients.
Notifications per channel: pending, given up, sent, failed tries.
Storage wear: bytes written (total, a second, a day), free space, the wear warning.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gateway.api.sources import device_health, driver_stats
from rules.alarms import AlarmState

if TYPE_CHECKING:
    from gateway.api.live import LiveState
    from gateway.components import Capabilities, ComponentContext

PRIORITIES = ("critical", "high", "medium", "low")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")


def render(ctx: ComponentContext, caps: Capabilities, live: LiveState) -> str:
    out = _Text()
    stats = driver_stats(ctx)
    health = {d: device_health(ctx, d, stats) for d in ctx.site.devices}
    out.family(
        "fgw_device_polls_total",
        "counter",
        "Polls (Modbus) or messages (MQTT) per device.",
        (({"device": d}, float(h["polls"] or 0)) for d, h in health.items()),
    )
    out.family(
        "fgw_device_errors_total",
        "counter",
        "Failed polls (Modbus) or malformed messages (MQTT) per device.",
        (({"device": d}, float(h["errors"] or 0)) for d, h in health.items()),
    )
    out.family(
        "fgw_device_online",
        "gauge",
        "1 while the device answers.",
        (({"device": d}, 1.0 if h["online"] else 0.0) for d, h in health.items()),
    )
    out.family(
        "fgw_readings_total",
        "counter",
        "Readings through the gateway.",
        [({}, float(live.readings_total))],
    )
    out.family(
        "fgw_readings_per_second",
        "gauge",
        "Readings per second over the last 10 s.",
        [({}, live.readings_per_second())],
    )
    out.family(
        "fgw_alarm_transitions_total",
        "counter",
        "Alarm transitions since start.",
        [({}, float(ctx.status.transitions_total))],
    )
    alarms = ctx.alarms.all()
    by_state = {str(s): 0 for s in AlarmState}
    by_priority = dict.fromkeys(PRIORITIES, 0)
    for alarm in alarms:
        by_state[str(alarm.state)] = by_state.get(str(alarm.state), 0) + 1
        if alarm.state != AlarmState.NORMAL:
            by_priority[alarm.priority] = by_priority.get(alarm.priority, 0) + 1
    out.family(
        "fgw_alarms",
        "gauge",
        "Alarms by ISA-18.2 state.",
        (({"state": s}, float(n)) for s, n in by_state.items()),
    )
    out.family(
        "fgw_alarms_not_normal",
        "gauge",
        "Alarms not normal, by priority.",
        (({"priority": p}, float(n)) for p, n in by_priority.items()),
    )
    # the core keeps its queue private; its length is what an operator needs to see
    engine_queue = ctx.status.engine_queue
    out.family(
        "fgw_engine_queue_depth",
        "gauge",
        "Reading batches waiting for the rule engine.",
        [({}, float(engine_queue))],
    )
    out.family(
        "fgw_engine_dropped_batches_total",
        "counter",
        "Reading batches dropped because the engine was behind.",
        [({}, float(ctx.status.dropped_batches))],
    )
    publisher = ctx.status.publisher.stats()
    out.family(
        "fgw_mqtt_outbox_depth",
        "gauge",
        "Messages waiting for the broker.",
        [({}, float(publisher.get("queued", 0)))],
    )
    out.family(
        "fgw_mqtt_connected",
        "gauge",
        "1 while connected to the broker.",
        [({}, 1.0 if publisher.get("connected") else 0.0)],
    )
    out.family(
        "fgw_mqtt_published_total",
        "counter",
        "Messages acknowledged by the broker.",
        [({}, float(publisher.get("published", 0)))],
    )
    out.family(
        "fgw_mqtt_dropped_total",
        "counter",
        "Droppable messages (readings) dropped from a full outbox.",
        [({}, float(publisher.get("dropped", 0)))],
    )
    hub = live.hub
    depths = hub.queue_depths()
    wear = caps.health.wear.report(time.monotonic()) if caps.health is not None else {}
    for name, kind, text, key in (
        ("fgw_written_bytes_total", "counter", "Bytes the gateway wrote to storage (/proc/self/io).",
         "written_bytes"),
        ("fgw_write_bytes_per_second", "gauge", "Bytes written a second over the last 10 min.",
         "write_bytes_per_second"),
        ("fgw_write_bytes_per_day", "gauge", "The same rate, per day.", "write_bytes_per_day"),
        ("fgw_storage_free_bytes", "gauge", "Free bytes of the storage folder's file system.",
         "storage_free_bytes"),
        ("fgw_storage_total_bytes", "gauge", "Size of the storage folder's file system.",
         "storage_total_bytes"),
    ):  # fmt: skip
        if key in wear:
            out.family(name, kind, text, [({}, float(wear[key]))])
    if wear:
        out.family(
            "fgw_storage_wear_warning",
            "gauge",
            "1 while the storage is nearly full or written far faster than expected.",
            [({}, 0.0 if wear["status"] == "ok" else 1.0)],
        )
    out.family("fgw_stream_clients", "gauge", "Open live streams.", [({}, float(len(depths)))])
    out.family(
        "fgw_stream_queue_depth_max",
        "gauge",
        "Events waiting for the slowest live stream.",
        [({}, float(max(depths, default=0)))],
    )
    out.family(
        "fgw_stream_resyncs_total",
        "counter",
        "Live streams that fell behind and were told to resync.",
        [({}, float(hub.resyncs))],
    )
    _notify(out, ctx)
    return "\n".join(out.lines) + "\n"


def _notify(out: _Text, ctx: ComponentContext) -> None:
    """Per notification channel: rows waiting, given up (kept 30 days), sent and failed tries."""
    stats = ctx.stats.get("notify")
    if stats is None:
        return
    channels = stats()["channels"]
    families = (
        ("fgw_notify_pending", "gauge", "Notifications waiting to be delivered.", "pending"),
        ("fgw_notify_given_up", "gauge",
         "Notifications given up after give_up_after (kept 30 days).", "given_up"),
        ("fgw_notify_sent_total", "counter", "Notifications delivered since start.", "sent"),
        ("fgw_notify_failed_attempts_total", "counter",
         "Delivery attempts that failed since start.", "failed_attempts"),
        ("fgw_notify_channel_failing", "gauge", "1 while the channel's last try failed.",
         "failing"),
    )  # fmt: skip
    for name, kind, help_, key in families:
        out.family(
            name, kind, help_, (({"channel": c}, float(s[key])) for c, s in channels.items())
        )
