"""Webhook channel: an HTTP POST of the alarm JSON (with the notification around it).

httpx, one client per channel kept open (connection reuse), TLS verified against the system's
store or the channel's `ca_file`; a bearer token from `token_file` goes in `Authorization` and
nowhere else (it is a `Secret`: never logged, never in a repr).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx

from config.alarm_options import ChannelConfig
from config.mqtt_settings import Secret


class DeliveryError(Exception):
    """The channel did not take the message (network, TLS, refused, HTTP error status)."""


def read_secret(base: Path, name: str | None) -> Secret | None:
    """A secret from a file (relative paths from the site file's folder), stripped of newlines.

    Raises:
        OSError: the file cannot be read (the message names it).
    """
    if name is None:
        return None
    path = Path(name) if Path(name).is_absolute() else base / name
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise OSError(f"cannot read secret file {path}: {exc.strerror or exc}") from exc


def tls_context(base: Path, ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        path = Path(ca_file) if Path(ca_file).is_absolute() else base / ca_file
        context.load_verify_locations(cafile=str(path))
    return context


class WebhookSender:
    """Posts JSON to one webhook. Use `await sender.send(body)`; `await sender.close()` at the end."""

    def __init__(self, channel: ChannelConfig, base: Path) -> None:
        assert channel.url is not None
        self.channel_id = channel.id
        self.url = channel.url
        self._token = read_secret(base, channel.token_file)
        headers = {"User-Agent": "facility-gateway"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        self._client = httpx.AsyncClient(
            timeout=channel.seconds,
            headers=headers,
            verify=tls_context(base, channel.ca_file),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"WebhookSender({self.channel_id!r}, {self.url!r})"

    async def send(self, body: dict[str, Any]) -> None:
        """POST `body` as JSON.

        Raises:
            DeliveryError: no answer, or an answer other than 2xx.
        """
        try:
            response = await self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code} from {self.url}")

    async def close(self) -> None:
        await self._client.aclose()
