"""The monthly maintenance report adds up (issue 16.4): every figure agrees with the timelines.

Ticket histories are generated through the ticket's own lifecycle (`Ticket.transition`, reopening
included), and each figure of the report is checked against an independent reading of the
timelines: the status each ticket had at the report's cutoff (the month's end, or now while the
month runs). The text says the same numbers as the figures.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.maintenance import ServiceTargets, Ticket, new_ticket
from rules.maintenance.calendar import month_bounds
from rules.maintenance.report import OUTCOMES, build_report, to_html, to_text
from rules.maintenance.tickets import URGENCIES, TicketTransitionRefused, TimelineEntry
from tests.support import examples

SHANGHAI = ZoneInfo("Asia/Shanghai")
START, END = month_bounds("2026-11", SHANGHAI)
DAY = 86400.0
ACTIVE = {"open", "assigned", "in_progress"}
DONE = {"resolved", "closed"}

steps = st.lists(
    st.tuples(
        st.sampled_from(["assigned", "in_progress", "resolved", "closed", "cancelled", "open"]),
        st.floats(min_value=60, max_value=12 * DAY),
    ),
    max_size=6,
)
histories = st.lists(
    st.tuples(
        st.sampled_from(["corrective", "preventive"]),
        st.sampled_from(URGENCIES),
        st.floats(min_value=-45 * DAY, max_value=40 * DAY),  # created, from the month's start
        st.none() | st.floats(min_value=3600, max_value=20 * DAY),  # due after creation
        steps,
    ),
    max_size=10,
)


def replay(
    kind: str, urgency: str, created: float, due: float | None, moves: list[tuple[str, float]]
) -> tuple[Ticket, list[TimelineEntry]]:
    at = START + created
    ticket, entry = new_ticket(
        kind=kind, device="pump-1", title="t", urgency=urgency, at=at, by="system",
        targets=ServiceTargets(SHANGHAI), origin={"kind": "manual"},
        due=None if due is None else at + due,
    )  # fmt: skip
    timeline = [entry]
    for to, delay in moves:
        at += delay
        try:
            timeline.append(ticket.transition(to, "wang", at, note="why", assignee="li"))
        except TicketTransitionRefused:
            continue
    return ticket, timeline


def status_at(timeline: list[TimelineEntry], instant: float) -> tuple[str, float | None, float]:
    """(status, when its standing resolution happened, since when) at `instant`: the oracle."""
    segments = [
        (e.at, e.to_status or "open") for e in timeline if e.action in ("created", "transition")
    ]
    status, since, resolved = "open", timeline[0].at, None
    for at, to in segments:
        if at >= instant:
            break
        if to == "resolved":
            resolved = at
        elif to in ACTIVE:
            resolved = None
        status, since = to, at
    return status, resolved, since


@settings(max_examples=examples(300), deadline=None)
@given(histories, st.none() | st.floats(min_value=-10 * DAY, max_value=40 * DAY))
def test_every_figure_agrees_with_the_timelines(
    generated: list[tuple[str, str, float, float | None, list[tuple[str, float]]]],
    now_offset: float | None,
) -> None:
    tickets, timelines = [], {}
    for number, history in enumerate(generated, start=1):
        ticket, timeline = replay(*history)
        ticket.id = number
        tickets.append(ticket)
        timelines[number] = timeline
    now = None if now_offset is None else START + now_offset
    report = build_report(
        tickets, "2026-11", START, END, SHANGHAI, "Riverside", timelines=timelines, now=now
    )
    cutoff = END if now is None else max(START, min(END, now))
    assert report.cutoff == cutoff and report.month_over == (cutoff >= END)

    expected = dict.fromkeys(OUTCOMES, 0)
    listed = set()
    created_in_month = dict.fromkeys(URGENCIES, 0)
    for t in tickets:
        if t.created_at >= cutoff:
            continue
        if t.created_at >= START:
            created_in_month[t.urgency] += 1
        status, resolved, since = status_at(timelines[t.id], cutoff)  # type: ignore[index]
        if status in ACTIVE:  # still to be done at the cutoff: open or overdue, never both
            expected["overdue" if t.resolution_due < cutoff else "open"] += 1
        elif status == "cancelled":
            if since < START:
                continue
            expected["cancelled"] += 1
        elif resolved is not None and resolved >= START:
            expected["on_time" if resolved <= t.resolution_due else "late"] += 1
        elif status == "closed" and since >= START:
            expected["done_before"] += 1
        else:
            continue
        listed.add(t.id)

    assert report.counts == expected
    # one row per ticket in the month, and the rows tally to the figures
    assert [r["id"] for r in report.rows] == sorted(listed)
    for name in OUTCOMES:
        assert sum(1 for r in report.rows if r["outcome"] == name) == expected[name]
        # the lines per kind add up to the month's
        assert sum(k[name] for k in report.by_kind.values()) == expected[name]
    for kind, counts in report.by_kind.items():
        assert sum(counts.values()) == sum(1 for r in report.rows if r["kind"] == kind)
    # the response section counts the tickets created in the month (up to the cutoff)
    assert {u: r["tickets"] for u, r in report.response.items()} == created_in_month
    assert all(
        r["responded_in_time"] <= r["responded"] <= r["tickets"] for r in report.response.values()
    )

    # the text says the same numbers, with the same words for the month and for each kind
    text = to_text(report)
    for label, counts in [("all tickets", expected), *sorted(report.by_kind.items())]:
        line = next(x for x in text.splitlines() if x.strip().startswith(f"{label}:"))
        numbers = [int(n) for n in re.findall(r"\b\d+\b", line.split(":", 1)[1])]
        c = counts
        assert numbers == [
            c["on_time"] + c["late"], c["on_time"], c["late"],
            c["open"] + c["overdue"], c["open"], c["overdue"],
            c["cancelled"], c["done_before"],
        ], line  # fmt: skip
    when = "at month end" if report.month_over else "now"
    assert f"open {when} " in text
    assert "<table>" in to_html(report)


def test_two_tickets_not_yet_due_are_open_not_overdue() -> None:
    """The issue's report: mid-month, two tickets due later were 'open at month end: 2 (overdue 2)'."""
    now = START + 5 * DAY
    tickets = []
    for number, kind in enumerate(("corrective", "preventive"), start=1):
        ticket, _ = replay(kind, "normal", 4 * DAY, 10 * DAY, [])
        ticket.id = number
        tickets.append(ticket)
    report = build_report(tickets, "2026-11", START, END, SHANGHAI, "Riverside", now=now)
    assert report.counts["open"] == 2 and report.counts["overdue"] == 0
    text = to_text(report)
    assert "so far (as of 2026-11-06 00:00)" in text
    assert "open now 2 (not yet due 2, overdue 0)" in text
    assert "corrective: done 0 (on time 0, late 0); open now 1 (not yet due 1, overdue 0)" in text
    # once the month is over, both are overdue at its end, and the report says so
    later = build_report(tickets, "2026-11", START, END, SHANGHAI, "Riverside", now=END + DAY)
    assert later.counts[
        "overdue"
    ] == 2 and "open at month end 2 (not yet due 0, overdue 2)" in to_text(later)


def test_a_ticket_reopened_after_the_month_was_done_in_it() -> None:
    ticket, timeline = replay(
        "corrective", "urgent", 1 * DAY, 5 * DAY,
        [("in_progress", 3600), ("resolved", DAY), ("in_progress", 40 * DAY)],
    )  # fmt: skip
    ticket.id = 1
    assert ticket.resolved_at is None  # reopened in December
    report = build_report([ticket], "2026-11", START, END, SHANGHAI, "R", timelines={1: timeline})
    assert report.counts["on_time"] == 1 and report.counts["open"] == 0
