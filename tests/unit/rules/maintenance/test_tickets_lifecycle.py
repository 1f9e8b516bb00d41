"""The ticket lifecycle (PRODUCT §5): every allowed and every refused transition, the rules around
them, service targets per urgency, overdue, and a hypothesis state machine checking invariants."""

from __future__ import annotations

import itertools
from datetime import time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rules.maintenance import ServiceTargets, Target, Ticket, TicketStatus, TicketTransitionRefused
from rules.maintenance.tickets import ACTIVE, ALLOWED, FINAL, NEXT_MORNING, new_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = 1_793_520_000.0  # 2026-11-01T16:00:00+08:00
TARGETS = ServiceTargets(SHANGHAI)

# one way to reach each status from a new ticket
PATHS: dict[TicketStatus, list[str]] = {
    TicketStatus.OPEN: [],
    TicketStatus.ASSIGNED: ["assigned"],
    TicketStatus.IN_PROGRESS: ["assigned", "in_progress"],
    TicketStatus.RESOLVED: ["assigned", "in_progress", "resolved"],
    TicketStatus.CLOSED: ["assigned", "in_progress", "resolved", "closed"],
    TicketStatus.CANCELLED: ["cancelled"],
}


def fresh(kind: str = "corrective", urgency: str = "urgent", origin: dict | None = None) -> Ticket:
    ticket, _ = new_ticket(
        kind=kind,
        device="pump-1",
        title="Pump running dry",
        urgency=urgency,
        at=T0,
        by="system",
        targets=TARGETS,
        origin=origin or {"kind": "manual", "by": "duty"},
    )
    ticket.id = 1
    return ticket


def move(ticket: Ticket, to: str, at: float) -> None:
    ticket.transition(to, "wang", at, note="why" if to == "cancelled" else "", assignee="wang")


def reach(status: TicketStatus) -> Ticket:
    ticket = fresh()
    for i, step in enumerate(PATHS[status]):
        move(ticket, step, T0 + 60 * (i + 1))
    assert ticket.status == status
    return ticket


PAIRS = [(a, b) for a in TicketStatus for b in TicketStatus]


@pytest.mark.parametrize(("start", "to"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_every_transition_is_allowed_or_refused_as_the_table_says(
    start: TicketStatus, to: TicketStatus
) -> None:
    ticket = reach(start)
    allowed = to in ALLOWED[start]
    if start == TicketStatus.ASSIGNED and to == TicketStatus.ASSIGNED:
        # reassigning is allowed to someone else only
        with pytest.raises(TicketTransitionRefused, match="already wang's"):
            ticket.transition(to, "duty", T0 + 999, assignee="wang")
        entry = ticket.transition(to, "duty", T0 + 999, assignee="li")
        assert ticket.assignee == "li" and entry.detail["assignee"] == "li"
        return
    if not allowed:
        before = ticket.record()
        with pytest.raises(TicketTransitionRefused, match=f"from {start} to {to}"):
            ticket.transition(to, "duty", T0 + 999, note="n", assignee="li")
        assert ticket.record() == before, "a refused transition changes nothing"
        return
    entry = ticket.transition(to, "duty", T0 + 999, note="n", assignee="li")
    assert ticket.status == to
    assert (entry.from_status, entry.to_status, entry.by, entry.at) == (start, to, "duty", T0 + 999)
    assert ticket.updated_at == T0 + 999


def test_the_table_is_the_product_lifecycle() -> None:
    assert ALLOWED[TicketStatus.CLOSED] == ALLOWED[TicketStatus.CANCELLED] == frozenset()
    forward = ["open", "assigned", "in_progress", "resolved", "closed"]
    for a, b in itertools.pairwise(forward):
        assert TicketStatus(b) in ALLOWED[TicketStatus(a)]
    for status in ACTIVE:
        assert TicketStatus.CANCELLED in ALLOWED[status]
    assert TicketStatus.CANCELLED not in ALLOWED[TicketStatus.RESOLVED]


def test_input_errors_are_value_errors() -> None:
    ticket = fresh()
    with pytest.raises(ValueError, match="unknown ticket status 'done'"):
        ticket.transition("done", "wang", T0)
    with pytest.raises(ValueError, match="needs an assignee"):
        ticket.transition("assigned", "wang", T0)
    with pytest.raises(ValueError, match="needs a note"):
        ticket.transition("cancelled", "wang", T0, note="  ")
    with pytest.raises(ValueError, match="by"):
        ticket.transition("assigned", " ", T0, assignee="li")
    for kwargs, message in [
        ({"kind": "repair"}, "kind"),
        ({"urgency": "asap"}, "urgency"),
    ]:
        with pytest.raises(ValueError, match=message):
            fresh(**kwargs)  # type: ignore[arg-type]
    assert ticket.status == TicketStatus.OPEN


def test_a_corrective_ticket_resolves_only_when_its_alarm_is_normal() -> None:
    ticket = fresh(origin={"kind": "alarm", "alarm": "pump-1.dry_run", "episode": 1})
    move(ticket, "in_progress", T0 + 60)
    with pytest.raises(TicketTransitionRefused, match=r"pump-1\.dry_run has not returned"):
        ticket.transition("resolved", "wang", T0 + 120, alarm_active=True)
    ticket.transition("resolved", "wang", T0 + 180, alarm_active=False)
    assert ticket.resolved_at == T0 + 180 and ticket.resolved_by == "wang"


def test_response_and_resolution_are_recorded_and_reopening_clears_resolution() -> None:
    ticket = fresh()
    move(ticket, "in_progress", T0 + 300)  # straight into work: assignee defaults sensibly
    assert ticket.responded_at == T0 + 300 and ticket.assignee == "wang"
    move(ticket, "resolved", T0 + 600)
    assert ticket.done_on_time() is True
    move(ticket, "in_progress", T0 + 900)  # the fix did not hold
    assert ticket.resolved_at is None and ticket.responded_at == T0 + 300
    move(ticket, "assigned", T0 + 950)  # handed over
    move(ticket, "open", T0 + 960)  # unassigned
    assert ticket.assignee is None


def test_default_targets_per_urgency() -> None:
    cases = {
        "emergency": (15 * 60, 4 * 3600),
        "urgent": (2 * 3600, 24 * 3600),
        "low": (24 * 3600, 7 * 86400),
    }
    for urgency, (respond, resolve) in cases.items():
        ticket = fresh(urgency=urgency)
        assert ticket.response_due - T0 == respond
        assert ticket.resolution_due - T0 == resolve
    normal = fresh(urgency="normal")  # 小事不过夜: 16:00 -> 08:00 next morning
    assert normal.resolution_due == T0 + 16 * 3600


def test_configured_targets_and_morning() -> None:
    targets = ServiceTargets(
        SHANGHAI,
        targets={"normal": Target(respond=3600, resolve=NEXT_MORNING)},
        morning=time(7, 30),
    )
    assert targets.response_due("normal", T0) == T0 + 3600
    assert targets.resolution_due("normal", T0) == T0 + 15.5 * 3600
    assert targets.resolution_due("urgent", T0) == T0 + 24 * 3600  # defaults for the others


def test_overdue_response_then_resolution_each_announced_once() -> None:
    ticket = fresh(urgency="emergency")
    assert ticket.check_overdue(T0 + 60) == []
    [late] = ticket.check_overdue(T0 + 16 * 60)
    assert late.action == "overdue" and late.detail["target"] == "response"
    assert ticket.is_overdue(T0 + 16 * 60)
    assert ticket.check_overdue(T0 + 17 * 60) == []
    move(ticket, "in_progress", T0 + 20 * 60)
    assert not ticket.is_overdue(T0 + 30 * 60)  # responded (late), not yet past resolution
    [late] = ticket.check_overdue(T0 + 5 * 3600)
    assert late.detail["target"] == "resolution"
    move(ticket, "resolved", T0 + 6 * 3600)
    assert not ticket.is_overdue(T0 + 7 * 3600) and ticket.done_on_time() is False


def test_repeat_counts_and_serialises() -> None:
    ticket = fresh(origin={"kind": "alarm", "alarm": "pump-1.dry_run", "episode": 1})
    entry = ticket.repeat(2, T0 + 60)
    assert ticket.count == 2 and ticket.last_episode == 2 and entry.detail["count"] == 2
    data = ticket.to_dict(T0 + 60, [entry])
    for key in (
        "id", "kind", "device", "title", "urgency", "status", "assignee", "due", "response_due",
        "resolution_due", "overdue", "origin", "count", "created_at", "updated_at", "notes",
        "timeline",
    ):  # fmt: skip
        assert key in data
    assert (
        data["created_at"] == "2026-11-01T08:00:00Z" and data["timeline"][0]["action"] == "repeat"
    )
    assert Ticket.from_record(ticket.record()) == ticket


class Lifecycle(RuleBasedStateMachine):
    """Random walks through the lifecycle: the status is always reachable by the table, the
    timeline has one entry per change, and a final ticket never moves again."""

    def __init__(self) -> None:
        super().__init__()
        self.ticket = fresh(origin={"kind": "alarm", "alarm": "a.b", "episode": 1})
        self.now = T0
        self.changes = 0
        self.alarm_active = True

    @rule(
        to=st.sampled_from(list(TicketStatus)),
        assignee=st.sampled_from([None, "wang", "li"]),
        note=st.sampled_from(["", "because"]),
    )
    def attempt(self, to: TicketStatus, assignee: str | None, note: str) -> None:
        self.now += 60
        before = self.ticket.status
        try:
            self.ticket.transition(
                to, "duty", self.now, note=note, assignee=assignee, alarm_active=self.alarm_active
            )
        except TicketTransitionRefused:
            assert self.ticket.status == before
            assert (
                to not in ALLOWED[before]
                or (to == TicketStatus.RESOLVED and self.alarm_active)
                or (to == before == TicketStatus.ASSIGNED)
            )
            return
        except ValueError:
            assert self.ticket.status == before
            return
        assert to in ALLOWED[before]
        self.changes += 1

    @rule()
    def alarm_clears(self) -> None:
        self.alarm_active = False

    @precondition(lambda self: self.ticket.status in ACTIVE)
    @rule()
    def time_passes(self) -> None:
        self.now += 3 * 86400
        self.ticket.check_overdue(self.now)
        assert self.ticket.is_overdue(self.now)

    @invariant()
    def consistent(self) -> None:
        t = self.ticket
        if t.status in FINAL:
            assert ALLOWED[t.status] == frozenset()
        if t.status in (TicketStatus.ASSIGNED, TicketStatus.IN_PROGRESS):
            assert t.assignee and t.responded_at is not None
        if t.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            assert t.resolved_at is not None and not self.alarm_active
        if t.status == TicketStatus.CLOSED:
            assert t.closed_at is not None


TestLifecycle = Lifecycle.TestCase
