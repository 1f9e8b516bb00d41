"""Small shared dependencies of the routes: what the application was built with.

`create_app` puts the gateway's `ComponentContext` and `Capabilities` and the API's live state on
`app.state`; routes read them through these, never the service itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from gateway.api.live import LiveState
    from gateway.components import Capabilities, ComponentContext


def context_of(request: Request) -> ComponentContext:
    context: ComponentContext = request.app.state.context
    return context


def capabilities_of(request: Request) -> Capabilities:
    capabilities: Capabilities = request.app.state.capabilities
    return capabilities


def live_of(request: Request) -> LiveState:
    live: LiveState = request.app.state.live
    return live
