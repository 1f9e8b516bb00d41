"""How the gateway reaches its broker: one place that turns `site.file.mqtt` into settings.

Both MQTT roles — the driver that listens to devices (`-in`) and the publisher that speaks for the
gateway (`-out`), each a paho client driven by the event loop (`drivers/mqtt_link.py`) — use the
same host, credentials and TLS, so the password file is read and the TLS context built here, once,
at start-up: a missing password file is a start-up error, not a 3 a.m. surprise on the first
reconnect. The password lives in a `Secret` that never prints.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.site import Site

TCP_NODELAY: tuple[int, int, int] = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
"""Nagle's algorithm holds small packets back waiting for an ACK: the first messages are late."""

CALL_TIMEOUT = 10.0
"""Seconds a client waits for CONNACK, SUBACK or PUBACK before it gives up on a call."""


class Secret:
    """A string that prints as stars: passwords must not reach logs, reprs or API output."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


@dataclass(frozen=True)
class BrokerSettings:
    """Everything needed to open a connection to the site's broker.

    Attributes:
        host, port: the broker.
        client_id_base: `mqtt.client_id`, or `fgw-{site}`; each role appends `-in` / `-out`.
        keepalive: seconds between PINGREQs; a dead link is noticed after 1.5 x this.
        username, password: optional credentials (the password read from `password_file`).
        tls: an SSL context when `mqtt.tls` is set.
    """

    host: str
    port: int
    client_id_base: str
    keepalive: int = 30
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    tls: ssl.SSLContext | None = field(default=None, repr=False)

    @classmethod
    def from_site(cls, site: Site) -> BrokerSettings:
        """Read the site's `mqtt:` section, its password file and TLS files.

        Relative file paths are taken from the site file's folder, like `storage.path`.

        Raises:
            OSError: the password file or a TLS file cannot be read (the message names the file).
        """
        mqtt = site.file.mqtt
        base = site.path.parent
        password = None
        if mqtt.password_file is not None:
            path = _resolve(base, mqtt.password_file)
            try:
                password = Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
            except OSError as exc:
                raise OSError(f"mqtt.password_file {path}: {exc.strerror or exc}") from None
        tls = None
        if mqtt.tls is not None:
            tls = _tls_context(
                base, mqtt.tls.ca_file, mqtt.tls.cert_file, mqtt.tls.key_file, mqtt.tls.insecure
            )
        return cls(
            host=mqtt.host,
            port=mqtt.port,
            client_id_base=mqtt.client_id or f"fgw-{site.id}",
            keepalive=max(1, round(mqtt.keepalive)),
            username=mqtt.username,
            password=password,
            tls=tls,
        )

    @property
    def where(self) -> str:
        """`host:port`, for log lines (never credentials)."""
        return f"{self.host}:{self.port}"


def _resolve(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def _tls_context(
    base: Path, ca: str | None, cert: str | None, key: str | None, insecure: bool
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(_resolve(base, ca)) if ca else None)
        if cert is not None:
            context.load_cert_chain(
                str(_resolve(base, cert)), str(_resolve(base, key)) if key else None
            )
    except OSError as exc:
        raise OSError(f"mqtt.tls: {exc.filename or ''} {exc.strerror or exc}".strip()) from None
    if insecure:
        context.check_hostname = False
    return context
