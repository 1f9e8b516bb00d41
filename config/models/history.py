"""Local history: how long readings are kept and when a reading is worth storing."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    model_validator,
)

from config.models.base import Duration, Strict


def _deadband_key(key: str) -> str:
    if key.count(".") != 1 or not all(key.split(".")):
        raise ValueError("the key is device.point or template.point")
    return key


def _deadband_value(value: Any) -> Any:
    """A number (not a bool, not quoted), finite and >= 0: checked here so the message is one."""
    band = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            band = float(value)
        except OverflowError:  # an int beyond any float
            band = math.inf
    if not math.isfinite(band) or band < 0:
        raise ValueError(f"a deadband is a number >= 0 in the point's unit, got {value!r}")
    return band


DeadbandKey = Annotated[str, AfterValidator(_deadband_key)]
"""`device.point` or `template.point` in `history.deadband` (which names exist: the resolver)."""
DeadbandValue = Annotated[float, BeforeValidator(_deadband_value)]


class HistoryConfig(Strict):
    """Local history (`gateway.storage.history`): raw readings, then 1-minute aggregates."""

    raw_window: Duration = 48 * 3600.0
    aggregate_window: Duration = 365 * 86400.0
    max_mb: float = Field(default=1024.0, ge=1)
    commit_interval: Duration = 30.0  # what a power cut may lose of the readings
    heartbeat: Duration = 600.0  # an unmoved point is stored at least this often
    deadband_percent: float = Field(default=0.1, ge=0, le=100)  # of a point's range, by default
    deadband: dict[DeadbandKey, DeadbandValue] = {}  # names checked in `deadband_overrides`

    @model_validator(mode="after")
    def _windows(self) -> HistoryConfig:
        if self.raw_window < 60:
            raise ValueError("raw_window must be at least 1m")
        if not 0.1 <= self.commit_interval <= 300:
            raise ValueError("commit_interval must be between 100ms and 5m")
        if self.heartbeat < 1:
            raise ValueError("heartbeat must be at least 1s")
        if self.aggregate_window < self.raw_window:
            raise ValueError("aggregate_window must be at least as long as raw_window")
        return self
