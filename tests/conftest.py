"""Shared fixtures: a real Mosquitto per test session on a free loopback port.

Never a public broker, never a hard-coded port: each run starts its own broker on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support import MOSQUITTO, Broker, free_port

# CI runs the same examples every time (a red build must be reproducible); at a desk, hypothesis
# explores new ones on each run and keeps failures in .hypothesis/ to replay.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Mosquitto for the whole test session."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("the mosquitto binary is missing: run the README's test command to install it")
    b = Broker(free_port(), tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, for tests that stop or restart it."""
    b = Broker(free_port(), tmp_path)
    b.start()
    yield b
    b.stop()
