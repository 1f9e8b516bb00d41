"""The one back-off helper: grows, is capped, jitters within bounds, resets after success."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from ground.backoff import Backoff


def test_grows_to_the_cap_and_resets() -> None:
    b = Backoff(initial=0.5, cap=4.0, factor=2.0, jitter=0.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


@given(
    initial=st.floats(0.01, 5), cap=st.floats(5, 120), jitter=st.floats(0, 1), seed=st.integers()
)
def test_delays_stay_within_jitter_and_cap(
    initial: float, cap: float, jitter: float, seed: int
) -> None:
    b = Backoff(initial=initial, cap=cap, jitter=jitter, rng=random.Random(seed))
    for _ in range(20):
        upper = b.peek()
        delay = b.next_delay()
        assert upper * (1 - jitter) - 1e-9 <= delay <= upper <= cap


def test_jitter_spreads_a_fleet() -> None:
    delays = {Backoff(rng=random.Random(seed)).next_delay() for seed in range(20)}
    assert len(delays) > 15
