"""Everything collected under tests/integration/ is marked `integration`.

These tests start real parts: Mosquitto, the simulators, `fgw` subprocesses, Chromium,
VictoriaMetrics, loopback servers; outages and fault injection. `pytest -m "not integration"` (the
fast loop) leaves them out; tests/guard.py fails a test outside this folder that starts one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # this hook sees every collected item, not only this folder's
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
