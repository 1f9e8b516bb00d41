"""What the alarm book knows of the night baseload alarms `{meter}.baseload_rise` (PRODUCT §11).

One rule per energy meter with `baseload_rise:` in the site file, for the book only: the rule
engine never sees it (`gateway.baseload_alarm` judges the nights and tells the book), so it is
nobody's root cause. Messages in both languages over the values the judge gives: `meter`,
`night` (YYYY-MM-DD), `night_kw`, `reference_kw`, `times` (night over reference), `nights`,
`ratio` (the limit).
"""

from __future__ import annotations

from config.models import BaseloadRise, Text
from config.site import Rule, Site

RULE = BaseloadRise.RULE

MESSAGE = Text(
    zh="{meter} 夜间基础负荷偏高: {night} 夜间 {night_kw:.1f} kW, 为前四周 ({reference_kw:.1f} kW) 的 "
    "{times:.2f} 倍",
    en="Night baseload up at {meter}: {night_kw:.1f} kW on the night of {night}, {times:.2f}× the "
    "{reference_kw:.1f} kW of the four weeks before",
)
ADVICE = Text(
    zh="夜间巡查: 哪些设备没有关 (水泵、照明、空调、风机)? 对比各回路电流, 查明原因",
    en="Walk the building at night: what is left running (pumps, lighting, HVAC, fans)? "
    "Compare the feeders' currents",
)


def baseload_rules(site: Site) -> list[Rule]:
    """The alarm book's rules of the night baseload alarms: one per meter that opts in."""
    rules = []
    for device in site.devices.values():
        spec = device.spec.baseload_rise
        if spec is None:
            continue
        rules.append(
            Rule(
                device=device.id,
                id=RULE,
                when="",  # judged by `BaseloadAlarm`, never by the rule engine
                priority=spec.priority,
                message=MESSAGE,
                ticket=spec.ticket,
                advice=ADVICE,
                follows=("night_kw",),  # a second risen night rewords the active alarm
            )
        )
    return rules
