"""`/api/v1/stream`: Server-Sent Events of alarm and ticket events, as they happen.

SSE rather than WebSockets: one-way is all the console needs, it passes proxies as plain HTTP, and
the browser's `EventSource` reconnects by itself (the console then re-reads the lists, so nothing
missed while it was away stays missed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from gateway.api.deps import live_of
from gateway.api.errors import ApiError
from gateway.api.events import Client, StreamClosed
from gateway.api.security import Viewer

router = APIRouter(prefix="/api/v1", tags=["stream"])

KEEPALIVE_SECONDS = 15.0
"""A comment line this often keeps proxies and phones from closing an idle stream."""


@router.get(
    "/stream",
    summary="Server-Sent Events: `alarm`, `ticket` and `resync` events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(*, request: Request, principal: Viewer) -> StreamingResponse:
    client = live_of(request).hub.join()
    if client is None:
        raise ApiError(503, "too many live streams open on this gateway: close one and retry")
    return StreamingResponse(
        _events(client, principal.name),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(client: Client, user: str) -> AsyncIterator[str]:
    try:
        yield "retry: 3000\n\n"
        yield _frame("hello", {"type": "hello", "user": user})
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_SECONDS):
                    event = await client.get()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            except StreamClosed:
                return
            yield _frame(str(event.get("type", "message")), event)
    finally:
        client.close()


def _frame(kind: str, data: object) -> str:
    text = json.dumps(data, ensure_ascii=False, default=str)
    return f"event: {kind}\ndata: {text}\n\n"
