"""The HTTP API and web console (PRODUCT §7): `create_app(gateway)` and the component serving it."""

from __future__ import annotations

from gateway.api.app import create_app

__all__ = ["create_app"]
