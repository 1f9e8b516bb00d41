"""Durations as written in site files."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ground.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("5m", 300), ("2h", 7200), ("15d", 1296000), ("1h30m", 5400),
     (" 2 s", 2), (3, 3.0), (0.25, 0.25), ("1w", 604800)],
)  # fmt: skip
def test_parses(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "10x", "s", "-5s", "1mo", "5s10", True, -1])
def test_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**8))
def test_format_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        assert parse_duration(text) >= 0
    except ValueError:
        pass
