"""Property tests of the API against its own OpenAPI document (schemathesis): whatever a client sends,
the gateway answers with a documented JSON error, never a 500.

Runs as an admin (bearer token), so generated requests reach every route's validation and logic,
not just the authentication check. The live stream is left out: it is endless by design and tested
in `test_api_live.py`. The schema is loaded when the module is imported (schemathesis' pytest
integration parametrizes at collection time), from a gateway on a throw-away site.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from config.site import load_site
from gateway.accounts import Accounts, fast_hasher
from gateway.api import create_app
from gateway.service import Gateway
from tests.api_support import add_users, console_site
from tests.support import examples, free_port

_FOLDER = Path(tempfile.mkdtemp(prefix="fgw-schema-"))
_GATEWAY = Gateway(load_site(console_site(_FOLDER, free_port())))
_ACCOUNTS = Accounts(_GATEWAY.site.storage_dir, hasher=fast_hasher())
add_users(_ACCOUNTS)
_, _TOKEN = _ACCOUNTS.create_token("ada", by="test")
APP = create_app(_GATEWAY.context, _GATEWAY.capabilities, accounts=_ACCOUNTS)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP).exclude(path="/api/v1/stream")

PRODUCT_ROUTES = {
    "/api/v1/alarms",
    "/api/v1/alarms/{alarm_id}/ack",
    "/api/v1/alarms/{alarm_id}/shelve",
    "/api/v1/alarms/{alarm_id}/unshelve",
    "/api/v1/alarms/{alarm_id}/journal",
    "/api/v1/devices",
    "/api/v1/devices/{device_id}",
    "/api/v1/points/{device_id}/{point}/history",
    "/api/v1/tickets",
    "/api/v1/tickets/{ticket_id}/transition",
    "/api/v1/assets",
    "/api/v1/stream",
    "/healthz",
    "/metrics",
}
"""The routes of PRODUCT §7: the document must describe each."""


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _ACCOUNTS.close()
    shutil.rmtree(_FOLDER, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=examples(20),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_input_makes_the_api_fail(case: Any) -> None:
    response = case.call_and_validate(
        headers={"authorization": f"Bearer {_TOKEN}"}, checks=[not_a_server_error]
    )
    if response.status_code >= 400:
        assert response.json()["error"]["message"], response.text


def test_the_document_describes_every_route_of_the_product() -> None:
    paths = set(APP.openapi()["paths"])
    assert PRODUCT_ROUTES - paths == set()
