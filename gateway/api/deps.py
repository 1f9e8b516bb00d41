"""Small shared dependencies of the routes: the gateway and the API's live state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from gateway.api.live import LiveState
    from gateway.service import Gateway


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def live_of(request: Request) -> LiveState:
    live: LiveState = request.app.state.live
    return live
