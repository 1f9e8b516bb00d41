"""Times for people: site wall clock with the zone shown; anything else passes through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from gateway.timefmt import local_time

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_iso_utc_is_shown_in_site_time_with_its_offset() -> None:
    assert local_time("2026-12-06T20:07:49Z", SHANGHAI) == "2026-12-07 04:07 UTC+8"
    assert local_time(0, ZoneInfo("UTC"), seconds=True) == "1970-01-01 00:00:00 UTC"
    assert local_time("2026-07-01T00:00:00+00:00", ZoneInfo("Asia/Kolkata")) == (
        "2026-07-01 05:30 UTC+5:30"
    )
    assert local_time("2026-01-15T12:00:00Z", ZoneInfo("America/St_Johns")) == (
        "2026-01-15 08:30 UTC-3:30"
    )


def test_nothing_and_not_a_time_pass_through() -> None:
    assert local_time(None, SHANGHAI) == "-"
    assert local_time("soon", SHANGHAI) == "soon"


@given(st.datetimes(min_value=datetime(1992, 1, 1), max_value=datetime(2100, 1, 1)))
def test_the_shown_time_is_the_same_instant(moment: datetime) -> None:
    """Since 1992 (China kept summer time 1986-1991, shown then as UTC+9)."""
    moment = moment.replace(tzinfo=UTC, microsecond=0)
    text = local_time(moment.isoformat(), SHANGHAI, seconds=True)
    assert text.endswith(" UTC+8")
    shown = datetime.strptime(text[:-6], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert shown - timedelta(hours=8) == moment
