"""`create_app(context, capabilities)`: the HTTP API of PRODUCT §7 and the console, one application.

The console is static files (HTML, CSS, JS, message catalogues) served from `gateway/console`; it
talks to the same API as any script does. The OpenAPI document is at `/api/v1/openapi.json`; the
interactive docs pages are off, since they load their scripts from a CDN and the box may be offline.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from gateway import __version__
from gateway.accounts import Accounts
from gateway.api import alarms, auth, devices, incidents, operations, stream, tickets
from gateway.api.deps import capabilities_of, context_of, live_of
from gateway.api.errors import ApiError, install_error_handlers
from gateway.api.events import EventHub
from gateway.api.live import LiveState
from gateway.api.metrics import render
from gateway.api.security import AuditTrail, SecurityHeaders, Viewer
from gateway.api.sources import alarm_view, site_health

if TYPE_CHECKING:
    from gateway.components import Capabilities, ComponentContext

CONSOLE = Path(__file__).resolve().parent.parent / "console"
LANGUAGES = ("zh-CN", "en")


@cache
def catalogue(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((CONSOLE / "i18n" / f"{lang}.json").read_text("utf-8"))
    return data


def event_enricher(context: ComponentContext, capabilities: Capabilities) -> Any:
    """Alarm events carry the alarm's whole current view, so a console row updates in place."""

    def enrich(event: Any) -> dict[str, Any]:
        if event.get("type") == "alarm" and event.get("id"):
            return {"alarm": alarm_view(context, capabilities, str(event["id"]))}
        return {}

    return enrich


def create_app(
    context: ComponentContext,
    capabilities: Capabilities,
    *,
    accounts: Accounts | None = None,
    live: LiveState | None = None,
) -> FastAPI:
    """The application for a gateway (running, or about to run).

    Args:
        context: the gateway's site, alarms, readings, commands and counters.
        capabilities: what its components offer (tickets, incidents, history, the console).
        accounts: the accounts database; default: the console component's, else the site's own.
        live: latest readings and the event hub; default: the console component's, so events flow.
    """
    console = capabilities.console
    if accounts is None:
        accounts = console.accounts if console else Accounts(context.site.storage_dir)
    if live is None:
        live = (
            console.live if console else LiveState(EventHub(event_enricher(context, capabilities)))
        )

    app = FastAPI(
        title="Facility Gateway",
        version=__version__,
        description="Alarms, devices, trends, tickets and assets of one site (PRODUCT §7).",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.context = context
    app.state.capabilities = capabilities
    app.state.accounts = accounts
    app.state.live = live
    app.state.session_hours = context.site.file.console.session_hours
    install_error_handlers(app)
    for module in (auth, alarms, devices, tickets, incidents, operations, stream):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"], summary="Liveness and a short health summary (no login)")
    async def healthz(*, request: Request) -> JSONResponse:
        health = site_health(context_of(request), capabilities_of(request))
        return JSONResponse(health, status_code=503 if health.get("status") == "unhealthy" else 200)

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics (viewer; use a bearer token)",
        response_class=PlainTextResponse,
    )
    async def metrics(*, request: Request, _: Viewer) -> PlainTextResponse:
        return PlainTextResponse(
            render(context_of(request), capabilities_of(request), live_of(request)),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    @app.get("/api/v1/site", tags=["health"], summary="The site: name, locale, devices")
    async def site(*, request: Request, _: Viewer) -> dict[str, Any]:
        ctx, caps = context_of(request), capabilities_of(request)
        info = ctx.site.file.site
        return {
            "id": info.id,
            "name": info.name,
            "timezone": info.timezone,
            "locale": info.locale,
            "health": site_health(ctx, caps),
            "capabilities": {
                "tickets": caps.maintenance is not None,
                "history": caps.history is not None,
                "shelve": True,
            },
        }

    @app.get("/i18n/{lang}.json", include_in_schema=False)
    async def messages(*, lang: Literal["zh-CN", "en"]) -> JSONResponse:
        return JSONResponse(catalogue(lang), headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            CONSOLE / "static" / "index.html", headers={"Cache-Control": "no-cache"}
        )

    app.mount("/static", StaticFiles(directory=CONSOLE / "static"), name="static")

    @app.api_route("/api/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
    async def unknown_route(*, rest: str) -> None:
        raise ApiError(404, f"no such route /api/{rest}")

    app.add_middleware(AuditTrail, accounts=lambda: app.state.accounts)
    app.add_middleware(SecurityHeaders)
    return app
