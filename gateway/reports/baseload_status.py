"""The night baseload alarm's settings and last verdict per meter, for the energy report and page.

Read from the site file and `<storage>/baseload.json` (what `gateway.baseload_alarm` judged last),
so `fgw report energy` gives it without a running gateway. A meter that has not opted in has none.
"""

from __future__ import annotations

from typing import Any

from config.site import Site
from gateway.baseload_alarm import LEDGER, NightLedger

LAST_KEYS = ("night", "night_kw", "reference_kw", "nights", "risen", "why")


def baseload_status(site: Site) -> dict[str, dict[str, Any]]:
    """Per opted-in meter: `ratio`, `min_kw`, `min_nights`, `priority`, and `last` (the last
    night judged: `night`, `night_kw`, `reference_kw`, `nights`, `risen`, `why`; None before the
    first)."""
    specs = {
        d.id: d.spec.baseload_rise
        for d in site.devices.values()
        if d.spec.baseload_rise is not None
    }
    if not specs:
        return {}
    ledger = NightLedger(site.storage_dir / LEDGER)
    out: dict[str, dict[str, Any]] = {}
    for meter, spec in specs.items():
        verdict = ledger.verdicts.get(meter)
        last = None if verdict is None else {key: verdict.get(key) for key in LAST_KEYS}
        if last is not None:
            for key in ("night_kw", "reference_kw"):
                if isinstance(last[key], float):
                    last[key] = round(last[key], 3)
        out[meter] = {
            "ratio": spec.ratio,
            "min_kw": spec.min_kw,
            "min_nights": spec.min_nights,
            "priority": spec.priority,
            "last": last,
        }
    return out


def baseload_line(status: dict[str, Any]) -> str:
    """One line of text for `fgw report energy`: the limit and the last night judged."""
    head = f"night baseload alarm above {status['ratio']:g}x the 4 weeks before"
    last = status["last"]
    if last is None:
        return f"{head}: no night judged yet"
    if last["risen"] is None:
        return f"{head}: night of {last['night']} not judged ({last['why']})"
    verdict = "RISEN" if last["risen"] else "within"
    return (
        f"{head}: night of {last['night']} {last['night_kw']:.1f} kW against "
        f"{last['reference_kw']:.1f} kW, {verdict}"
    )
