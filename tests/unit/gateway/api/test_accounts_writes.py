"""The accounts database on a flash card: reading the API writes nothing, whatever the login.

A login writes its session, a state-changing request its audit entry; a GET, by cookie or bearer
token, only reads (no last-seen stamp, no session refresh).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from config.site import load_site
from gateway.accounts import Accounts, fast_hasher
from gateway.api import create_app
from gateway.service import Gateway
from tests.api_support import add_users, console_site, login
from tests.support import free_port


async def test_reading_the_api_writes_nothing_to_the_accounts_database(tmp_path: Path) -> None:
    gateway = Gateway(load_site(console_site(tmp_path, free_port())))
    accounts = Accounts(gateway.site.storage_dir, hasher=fast_hasher())
    add_users(accounts)
    _, token = accounts.create_token("vera", by="test", label="reader")
    app = create_app(gateway.context, gateway.capabilities, accounts=accounts)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            await login(c, "vera")
            before = accounts._db.total_changes
            for path in ("/api/v1/alarms", "/api/v1/devices", "/api/v1/tickets", "/healthz"):
                for _ in range(25):
                    assert (await c.get(path)).status_code == 200, path
                    bearer = {"authorization": f"Bearer {token}"}
                    assert (await c.get(path, headers=bearer)).status_code == 200, path
            assert accounts._db.total_changes == before
    finally:
        accounts.close()
        await gateway.close()
