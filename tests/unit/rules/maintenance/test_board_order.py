"""`board_order`: the one order of tickets on the console's board and in `fgw tickets list`."""

from __future__ import annotations

import itertools
import random

from hypothesis import given
from hypothesis import strategies as st

from rules.maintenance.tickets import URGENCIES, board_order

TICKETS = st.lists(
    st.fixed_dictionaries(
        {
            "urgency": st.sampled_from([*URGENCIES, "unknown"]),
            "due": st.none() | st.integers(0, 10**6).map(lambda s: f"2026-12-{1 + s % 28:02d}T"
                                                                    f"{s % 24:02d}:00:00Z"),
        }
    ),
    max_size=30,
)  # fmt: skip


@given(TICKETS, st.randoms())
def test_most_urgent_then_soonest_due_whatever_the_input_order(
    raw: list[dict[str, object]], rnd: random.Random
) -> None:
    tickets = [{**t, "id": i + 1} for i, t in enumerate(raw)]
    shuffled = tickets[:]
    rnd.shuffle(shuffled)
    ordered = board_order(shuffled)
    assert ordered == board_order(tickets)  # one order, whatever came in
    rank = [URGENCIES.index(t["urgency"]) if t["urgency"] in URGENCIES else 9 for t in ordered]
    assert rank == sorted(rank)
    for a, b in itertools.pairwise(ordered):
        if a["urgency"] == b["urgency"] and a["due"] and b["due"]:
            assert str(a["due"]) <= str(b["due"])
        if a["urgency"] == b["urgency"] and a["due"] is None:
            assert b["due"] is None  # no due time goes after those with one
