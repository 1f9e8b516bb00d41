"""Local history: how long readings are kept and when a reading is worth storing."""

from __future__ import annotations

from pydantic import (
    Field,
    model_validator,
)

from config.models.base import Duration, Strict


class HistoryConfig(Strict):
    """Local history (`gateway.storage.history`): raw readings, then 1-minute aggregates."""

    raw_window: Duration = 48 * 3600.0
    aggregate_window: Duration = 365 * 86400.0
    max_mb: float = Field(default=1024.0, ge=1)
    commit_interval: Duration = 30.0  # what a power cut may lose of the readings
    heartbeat: Duration = 600.0  # an unmoved point is stored at least this often
    deadband_percent: float = Field(default=0.1, ge=0, le=100)  # of a point's range, by default
    deadband: dict[str, float] = {}  # `device.point` or `template.point` -> deadband (>= 0)

    @model_validator(mode="after")
    def _windows(self) -> HistoryConfig:
        if self.raw_window < 60:
            raise ValueError("raw_window must be at least 1m")
        if not 0.1 <= self.commit_interval <= 300:
            raise ValueError("commit_interval must be between 100ms and 5m")
        if self.heartbeat < 1:
            raise ValueError("heartbeat must be at least 1s")
        for key, band in self.deadband.items():
            if key.count(".") != 1 or band < 0:
                raise ValueError(
                    f"deadband {key!r}: the key is device.point or template.point, "
                    "the value a number >= 0"
                )
        if self.aggregate_window < self.raw_window:
            raise ValueError("aggregate_window must be at least as long as raw_window")
        return self
