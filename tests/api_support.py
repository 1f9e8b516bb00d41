"""Support for API and console tests: a site whose console listens on a free port, users, logins.

Sites come from `tests.e2e.write_site` (free ports, an id of their own) with `console.listen` set to
port 0, so the console binds a port the kernel picks and tests read it from the component.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from config.site import Site, load_site
from gateway.accounts import Accounts
from gateway.api.component import ApiComponent
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import Watcher, watching, write_site

PASSWORD = "correct-horse-7"
USERS = {"vera": "viewer", "eddie": "engineer", "ada": "admin"}


LEDGER = {
    "pump-1": "name: 1号生活水泵, asset: {location: B1 泵房, model: CR 10-6, manufacturer: Grundfos, "
    "installed: 2021-05-01, warranty_until: 2026-05-01}",
    "pump-2": "name: 2号生活水泵, asset: {location: B1 泵房, model: CR 10-6, manufacturer: Grundfos, "
    "installed: 2021-05-01, warranty_until: 2026-05-01}",
    "meter-1": "name: 低压总进线, asset: {location: B1 配电房, model: PM5560, installed: 2020-11-20}",
    "lift-1": "name: 1号楼客梯, asset: {location: 1号楼, model: GeN2, installed: 2019-08-15}",
    "fire-1": "name: 消防主机, asset: {location: 消防控制室, model: JB-QB-GST200, installed: 2019-06-01}",
}
"""Names and asset records (设备台账) as a site would have them, for the console's pages."""


def console_site(folder: Path, mqtt_port: int, locale: str = "en") -> Path:
    path = write_site(folder, mqtt_port)
    text = path.read_text().replace("locale: en", f"locale: {locale}")
    for device, extra in LEDGER.items():
        text = text.replace(f"{{id: {device}, ", f"{{id: {device}, {extra}, ", 1)
    # trends in these tests want readings within a second, not the default 10 s commit
    path.write_text(text + "console: {listen: '127.0.0.1:0'}\nhistory: {commit_interval: 1s}\n")
    return path


def add_users(accounts: Accounts) -> None:
    for name, role in USERS.items():
        if accounts.get_user(name) is None:
            accounts.add_user(name, role, PASSWORD, by="test")


def component_of(gateway: Gateway) -> ApiComponent:
    console = gateway.capabilities.console
    assert isinstance(console, ApiComponent)
    return console


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    """Log `client` in (it keeps the cookie); returns the CSRF token for its POSTs."""
    response = await client.post("/api/v1/login", json={"name": name, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf"])


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 15.0, every: float = 0.1
) -> Any:
    """Await `probe()` until it returns something truthy (a condition, not a fixed sleep)."""
    async with asyncio.timeout(timeout):
        while not (result := await probe()):  # noqa: ASYNC110 - polling another process over HTTP
            await asyncio.sleep(every)
        return result


@dataclass
class LiveSite:
    site: Site
    gateway: Gateway
    watcher: Watcher
    mqtt_port: int

    @property
    def component(self) -> ApiComponent:
        return component_of(self.gateway)

    @property
    def url(self) -> str:
        url = self.component.url
        assert url is not None
        return url.rstrip("/")

    async def inject(self, device: str, **command: Any) -> None:
        result = await send_inject("127.0.0.1", self.mqtt_port, self.site.id, device, command)
        assert result.get("ok"), result


@contextlib.asynccontextmanager
async def live_site(
    mqtt_port: int, folder: Path, locale: str = "en", edit: Callable[[str], str] | None = None
) -> AsyncIterator[LiveSite]:
    """Simulators and a running gateway whose console serves on a free loopback port; `edit`
    rewrites the site file's text first."""
    path = console_site(folder, mqtt_port, locale)
    if edit is not None:
        path.write_text(edit(path.read_text()))
    site = load_site(path)
    async with (
        SiteSimulator(site, "127.0.0.1", mqtt_port, seed=11),
        watching(mqtt_port, site.topic_prefix) as watcher,
    ):
        gateway = Gateway(site)
        add_users(component_of(gateway).accounts)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop), name="test.gateway")
        try:
            await watcher.wait_for(lambda: watcher.status == "online", timeout=15)
            await asyncio.wait_for(component_of(gateway).serving.wait(), 10)
            yield LiveSite(site, gateway, watcher, mqtt_port)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
