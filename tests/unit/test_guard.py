"""The guard that keeps real parts out of unit tests (tests/guard.py) refuses them loudly."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests import guard
from tests.support import Broker, free_port

REFUSED = r"starts .* but is not marked integration: move it .* under tests/integration/"


def test_a_subprocess_is_refused() -> None:
    with pytest.raises(pytest.fail.Exception, match=REFUSED):
        subprocess.run(["true"], check=False)
    guard.forget()


def test_an_ip_listener_and_connection_are_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # binding alone (a free port) is allowed
        with pytest.raises(pytest.fail.Exception, match=REFUSED):
            sock.listen()
    with socket.socket() as sock, pytest.raises(pytest.fail.Exception, match=REFUSED):
        sock.connect(("127.0.0.1", free_port()))
    guard.forget()


def test_mosquitto_is_refused_before_it_starts(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="starts Mosquitto"):
        Broker(free_port(), tmp_path).start()
    guard.forget()


def test_a_unix_socket_is_not_a_real_part(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "s"))
        sock.listen()
    assert guard.violations() == []
