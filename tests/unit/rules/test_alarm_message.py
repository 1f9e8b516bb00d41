"""An alarm's message tells what happened, and keeps telling it after the condition clears."""

from __future__ import annotations

from config.models import Text
from config.site import Rule
from rules.alarms import AlarmBook
from rules.engine import ConditionChange

T0 = 1_800_000_000.0


def _change(active: bool, zones: int, at: float) -> ConditionChange:
    return ConditionChange(
        alarm_id="fire-1.fire_alarm", device="fire-1", rule="fire_alarm", active=active,
        suppressed=False, value=zones, values={"zones": zones}, ts_wall=at, reason="",
    )  # fmt: skip


def test_return_to_normal_keeps_the_message_of_the_activation() -> None:
    rule = Rule("fire-1", "fire_alarm", "zones != 0", "critical",
                Text(zh="火警 {zones}", en="FIRE in zones {zones}"), shelvable=False)  # fmt: skip
    book = AlarmBook([rule], locale="en")
    book.apply(_change(True, 4, T0))
    assert book.get("fire-1.fire_alarm").message == "FIRE in zones 4"
    (cleared,) = book.apply(_change(False, 0, T0 + 5))
    assert cleared.to_state == "rtn_unack"
    alarm = book.get("fire-1.fire_alarm")
    assert alarm.message == "FIRE in zones 4" and alarm.message_zh == "火警 4"
    assert alarm.value == 0  # the value is the latest one
