"""The console inside `fgw run`: uvicorn serving `create_app(...)` on `console.listen`.

Why a component: the API reads the live alarm book and readings, so it must run on the gateway's own
event loop; and a console that cannot bind its port must not take the alarm path down with it — it
logs one clear error and the gateway goes on publishing alarms over MQTT.

The port is bound at once, but the web stack — FastAPI, the routes and uvicorn (its cost is in
docs/performance.md) — is loaded when the console is first used: on the first
connection to its port, and never before the first readings came in (or `DEFER_SECONDS` passed).
The import runs in a worker thread. So the console never delays the first poll, a gateway nobody
browses does not carry it, and the first connection waits in the listen backlog meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.accounts import Accounts
from gateway.api.events import EventHub
from gateway.api.live import LiveState
from gateway.components import Capabilities, Component, ComponentContext
from ground.model import Reading

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("fgw.console")

SHUTDOWN_SECONDS = 3.0

DEFER_SECONDS = 2.0
"""The longest the console waits for the first readings before loading its web stack anyway."""


def _server(config: uvicorn.Config) -> uvicorn.Server:
    """uvicorn without its own signal handling: SIGTERM belongs to `fgw run`."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return _Server(config)


def _import_web_stack() -> None:
    """FastAPI, the routes and uvicorn: imported off the event loop (see the module's doc)."""
    import uvicorn  # noqa: F401

    import gateway.api.app  # noqa: F401


class ApiComponent(Component):
    """Owns the accounts database, the live state (latest readings, event hub) and the server.

    Args:
        context: what the API reads and commands (`create_app`'s).
        capabilities: what the other components offer; read when the application is built.
        accounts: the accounts database (default: the site's own).
    """

    name = "console"

    def __init__(
        self,
        context: ComponentContext,
        capabilities: Capabilities,
        accounts: Accounts | None = None,
    ) -> None:
        self.context = context
        self.capabilities = capabilities
        self.settings = context.site.file.console
        self.accounts = accounts or Accounts(context.site.storage_dir)
        self._enrich: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
        self.live = LiveState(EventHub(self._enrich_event))
        self.port: int | None = None  # the bound port once serving (listen may say port 0)
        self.app: Any = None  # the FastAPI application, once the console was first used
        self.serving = asyncio.Event()
        self._polled = asyncio.Event()  # set by the first readings: time to load the web stack
        # every event the gateway publishes on `P/events` (alarm transitions, ticket changes)
        context.events.subscribe(self.live.hub.publish)

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = self.settings.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return (
            f"http://{shown}:{self.port}/" if ":" not in shown else f"http://[{shown}]:{self.port}/"
        )

    def _enrich_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """`gateway.api.app.event_enricher` once the web stack is loaded (by this component or by
        whoever called `create_app`); before, no client can be connected to see an event, so
        there is nothing to add."""
        if self._enrich is None:
            app = sys.modules.get("gateway.api.app")
            enricher = getattr(app, "event_enricher", None)  # None while still being imported
            if enricher is None:
                return {}
            self._enrich = enricher(self.context, self.capabilities)
        return self._enrich(event)

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.live.add(batch)
        self._polled.set()

    async def _web_stack_wanted(self, sock: socket.socket) -> None:
        """Return once the web stack is worth loading: after the first readings (at most
        `DEFER_SECONDS`) *and* the first connection to the console's port."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._polled.wait(), DEFER_SECONDS)
        loop = asyncio.get_running_loop()
        knocked: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if not knocked.done():
                knocked.set_result(None)

        loop.add_reader(sock.fileno(), on_readable)
        try:
            await knocked
        finally:
            loop.remove_reader(sock.fileno())
        await asyncio.sleep(0.1)  # a first batch just polled reaches MQTT before the GIL is shared
        await asyncio.to_thread(_import_web_stack)

    async def run(self) -> None:
        if not self.settings.enabled:
            return
        try:
            sock = _bind(self.settings.host, self.settings.port)
        except OSError as exc:
            log.error(
                "console not started: cannot listen on %s: %s (set console.listen in the site file)",
                self.settings.listen,
                exc.strerror or exc,
            )
            return
        self.port = int(sock.getsockname()[1])
        log.info("console at %s", self.url, extra={"listen": self.settings.listen})
        self.serving.set()  # connections are accepted (they wait in the backlog until served)
        try:
            try:
                await self._web_stack_wanted(sock)
                import uvicorn

                from gateway.api.app import create_app

                app = self.app = create_app(self.context, self.capabilities)
            except Exception:  # a broken console install must not stop the alarm path
                log.exception("console not started: the application could not be built")
                return
            config = uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="off",
                server_header=False,
                timeout_graceful_shutdown=SHUTDOWN_SECONDS,
            )
            server = _server(config)
            try:
                await server.serve(sockets=[sock])
            finally:
                self.live.hub.close()  # end the live streams so connections can close
                if server.started and not server.should_exit:
                    server.should_exit = True
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(server.shutdown([sock]), SHUTDOWN_SECONDS + 2)
        finally:
            sock.close()
            self.serving.clear()

    async def close(self) -> None:
        self.accounts.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def build(context: ComponentContext, capabilities: Capabilities) -> ApiComponent:
    """The `gateway.registry` factory: always built (it also keeps the accounts), serving when
    enabled; offers `console` (its accounts and live state, `create_app`'s defaults)."""
    component = ApiComponent(context, capabilities)
    capabilities.console = component
    return component
