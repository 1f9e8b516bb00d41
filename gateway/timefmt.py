"""Times for people: the site's wall clock with its offset shown (`2026-12-07 12:07 UTC+8`).

Machine outputs (JSON, CSV, MQTT) stay ISO 8601 UTC; what a person reads on the command line or in
a report is in the site's time zone, and says which, so a night-shift technician never converts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def zone_label(moment: datetime) -> str:
    """`UTC+8`, `UTC-3:30`, `UTC` for an aware datetime."""
    offset = moment.utcoffset()
    minutes = round(offset.total_seconds() / 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    hours, rest = divmod(minutes, 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def local_time(value: str | float | None, zone: ZoneInfo, seconds: bool = False) -> str:
    """An ISO 8601 text or epoch seconds as site time with its zone; `-` for none, the text
    itself when it is not a time."""
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        else:
            moment = datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        return str(value)
    here = moment.astimezone(zone)
    return (
        here.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " " + zone_label(here)
    )
