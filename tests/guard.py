"""Keeps the unit/integration split honest: real parts start only in tests marked `integration`.

While a test that is not marked `integration` runs (setup, call, teardown), starting Mosquitto, a
simulator's server, any subprocess (a gateway, Chromium, VictoriaMetrics) or an IP connection or
listener fails that test, saying what it started and where such a test belongs (tests/integration/,
whose conftest marks everything collected there). tests/conftest.py wraps every test in `watching`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

_current: list[pytest.Item] = []  # the unmarked test running now (empty: none, or integration)
_violations: list[str] = []  # what it started, also from other threads (failed again at the end)


def is_integration(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is not None


def require_integration(what: str) -> None:
    """Fail the running test unless it is marked `integration`: it is about to start `what`."""
    if not _current:
        return
    message = (
        f"{_current[0].nodeid} starts {what} but is not marked integration: "
        "move it (or the part of it that needs real parts) under tests/integration/"
    )
    _violations.append(message)
    pytest.fail(message, pytrace=False)


def _guarded(what: Callable[..., str], original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        described = what(*args, **kwargs)
        if described:
            require_integration(described)
        return original(*args, **kwargs)

    return wrapper


def _ip(sock: socket.socket) -> bool:
    return sock.family in (socket.AF_INET, socket.AF_INET6)


def _patches() -> list[tuple[Any, str, Callable[..., str]]]:
    """(owner, attribute, description of the call or "" when allowed) for every real part."""
    from simulators.converter import ConverterServer, PtyLine
    from simulators.modbus_server import BusServer
    from simulators.runner import SiteSimulator

    def child(popen: subprocess.Popen[Any], args: Any, *_: Any, **__: Any) -> str:
        return f"a subprocess ({args if isinstance(args, str) else ' '.join(map(str, args))})"

    def connect(sock: socket.socket, address: Any, *_: Any) -> str:
        return f"a connection to {address!r}" if _ip(sock) else ""

    def listen(sock: socket.socket, *_: Any) -> str:
        return f"a listener on {sock.getsockname()!r}" if _ip(sock) else ""

    return [
        (subprocess.Popen, "_execute_child", child),
        (socket.socket, "connect", connect),
        (socket.socket, "connect_ex", connect),
        (socket.socket, "listen", listen),
        (SiteSimulator, "__aenter__", lambda *_: "the site simulator"),
        (BusServer, "start", lambda *_: "a simulated Modbus server"),
        (ConverterServer, "start", lambda *_: "a simulated Modbus converter"),
        (PtyLine, "start", lambda *_: "a simulated serial line"),
    ]


@contextlib.contextmanager
def watching(item: pytest.Item) -> Iterator[None]:
    """Around one test: unless it is marked `integration`, every real part fails it."""
    if is_integration(item):
        yield
        return
    with contextlib.ExitStack() as stack:
        for owner, name, what in _patches():
            stack.enter_context(
                mock.patch.object(owner, name, _guarded(what, getattr(owner, name)))
            )
        _current.append(item)
        _violations.clear()
        try:
            yield
        finally:
            _current.clear()


def violations() -> list[str]:
    """What the running unmarked test started so far (a thread's attempt included)."""
    return list(_violations)


def forget() -> None:
    """Forget what the running test started (for the guard's own tests, which expect a refusal)."""
    _violations.clear()
