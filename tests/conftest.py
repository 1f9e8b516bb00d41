"""Shared fixtures: a real Mosquitto per test session on a free loopback port; the hypothesis
profiles; the guard that keeps real parts out of tests not marked `integration` (tests/guard.py).

Never a public broker, never a hard-coded port: each run starts its own broker on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests import guard
from tests.support import FULL, MOSQUITTO, Broker, examples, free_port

# CI runs the full number of examples, the same ones every time (a red build must be reproducible).
# At a desk, "fast" runs a tenth of them (tests.support.examples scales a test's own max_examples
# too), new ones on each run, without hypothesis' timing deadline (a busy machine is not a failure
# here; CI keeps it), and keeps failures in .hypothesis/ to replay.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("fast", max_examples=examples(100), deadline=None)
settings.load_profile("ci" if FULL else "fast")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    with guard.watching(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> object:
    result = yield
    if started := guard.violations():  # also what another thread of the test started
        pytest.fail("\n".join(started), pytrace=False)
    return result


@pytest.fixture(scope="session")
def session_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Mosquitto for the whole test session; tests ask for it as `broker`."""
    if not Path(MOSQUITTO).exists():
        pytest.fail("the mosquitto binary is missing: run the README's test command to install it")
    b = Broker(free_port(), tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Broker:
    """The session's Mosquitto, for tests marked `integration` only (checked before it starts)."""
    guard.require_integration("Mosquitto")
    session: Broker = request.getfixturevalue("session_broker")
    return session


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, for tests that stop or restart it."""
    b = Broker(free_port(), tmp_path)
    b.start()
    yield b
    b.stop()
