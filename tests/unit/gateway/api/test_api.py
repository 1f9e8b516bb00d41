"""HTTP API: authentication, roles, CSRF, errors, audit, headers, metrics and tickets — on a real
`Gateway` (not running: no live data needed here), through `httpx.ASGITransport`.

Live data (alarms raised by simulators, devices polled, the SSE stream over real HTTP) is in
`test_api_live.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from config.site import load_site
from gateway.accounts import Accounts, fast_hasher
from gateway.api import create_app
from gateway.api.app import CONSOLE
from gateway.components import ComponentContext
from gateway.service import Gateway
from tests.api_support import PASSWORD, add_users, console_site, login
from tests.support import free_port


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    # no broker needed: the gateway is not started, its MQTT output just queues
    gateway = Gateway(load_site(console_site(tmp_path, free_port())))
    accounts = Accounts(gateway.site.storage_dir, hasher=fast_hasher())
    add_users(accounts)
    yield create_app(gateway.context, gateway.capabilities, accounts=accounts)
    accounts.close()


def client(app: FastAPI, base: str = "http://127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == response.status_code
    assert body["error"]["message"]
    return dict(body["error"])


def audit(app: FastAPI) -> list[Any]:
    return list(app.state.accounts.audit_log(100))


# ---------------------------------------------------------------------------------- authentication


async def test_every_route_but_healthz_and_login_needs_authentication(app: FastAPI) -> None:
    async with client(app) as c:
        spec = (await c.get("/api/v1/openapi.json")).json()
        checked = 0
        for path, methods in spec["paths"].items():
            if path in ("/healthz", "/api/v1/login"):
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            for method in methods:
                response = await c.request(method.upper(), url, json={})
                assert response.status_code == 401, (method, path, response.text)
                assert error_of(response)["code"] == "unauthenticated"
                assert response.headers["www-authenticate"].startswith("Bearer")
                checked += 1
        assert checked >= 20


async def test_healthz_answers_without_login(app: FastAPI) -> None:
    async with client(app) as c:
        response = await c.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] in ("ok", "degraded")
    assert "checks" in response.json()


async def test_login_sets_a_strict_http_only_session_cookie(app: FastAPI) -> None:
    async with client(app) as c:
        response = await c.post("/api/v1/login", json={"name": "vera", "password": PASSWORD})
        assert response.status_code == 200
        assert response.json()["role"] == "viewer"
        cookies = {h.split("=")[0]: h for h in response.headers.get_list("set-cookie")}
        session = cookies["fgw_session"].lower()
        assert "httponly" in session and "samesite=strict" in session and "secure" not in session
        assert "httponly" not in cookies["fgw_csrf"].lower()  # the page must read it
        me = await c.get("/api/v1/me")
        assert me.json() == {"name": "vera", "role": "viewer", "csrf": response.json()["csrf"]}
    # behind TLS the cookie is Secure
    async with client(app, "https://gw.example") as c:
        response = await c.post("/api/v1/login", json={"name": "vera", "password": PASSWORD})
        assert "secure" in response.headers.get_list("set-cookie")[0].lower()


async def test_wrong_password_and_unknown_user_look_the_same(app: FastAPI) -> None:
    async with client(app) as c:
        wrong = await c.post("/api/v1/login", json={"name": "vera", "password": "nope-nope"})
        nobody = await c.post("/api/v1/login", json={"name": "nobody", "password": "nope-nope"})
    assert wrong.status_code == nobody.status_code == 401
    assert (
        error_of(wrong)["message"] == error_of(nobody)["message"] == "wrong user name or password"
    )
    assert [(e.action, e.outcome) for e in audit(app)[:2]] == [
        ("login", "denied"),
        ("login", "denied"),
    ]


async def test_login_is_throttled_after_repeated_failures(app: FastAPI) -> None:
    async with client(app) as c:
        for _ in range(5):
            assert (
                await c.post("/api/v1/login", json={"name": "eddie", "password": "guess-guess"})
            ).status_code == 401
        # even the right password waits now
        response = await c.post("/api/v1/login", json={"name": "eddie", "password": PASSWORD})
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0
        assert "too many failed logins" in error_of(response)["message"]
        # another user from another address is not locked out
        other = await c.post(
            "/api/v1/login",
            json={"name": "vera", "password": PASSWORD},
            headers={"x-forwarded-for": "10.0.0.9"},
        )
    assert other.status_code in (200, 429)  # same client address in ASGI tests: may be throttled
    assert any(e.outcome == "throttled" for e in audit(app))


async def test_logout_ends_the_session(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "vera")
        cookie = c.cookies["fgw_session"]
        assert (await c.post("/api/v1/logout", headers={"x-csrf-token": csrf})).status_code == 200
        c.cookies.set("fgw_session", cookie)  # a copied cookie is dead too
        response = await c.get("/api/v1/alarms")
    assert response.status_code == 401
    assert "session has ended" in error_of(response)["message"]


async def test_cookie_posts_need_the_csrf_token_bearer_posts_do_not(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "eddie")
        url = "/api/v1/alarms/fire-1.fire_alarm/ack"
        missing = await c.post(url, json={"comment": "x"})
        wrong = await c.post(url, json={"comment": "x"}, headers={"x-csrf-token": "forged"})
        right = await c.post(url, json={"comment": "x"}, headers={"x-csrf-token": csrf})
    assert missing.status_code == wrong.status_code == 403
    assert "CSRF" in error_of(missing)["message"]
    assert right.status_code == 409  # past the CSRF check: a normal alarm has nothing to ack
    _, token = app.state.accounts.create_token("eddie", by="test")
    async with client(app) as c:
        response = await c.post(
            url, json={"comment": "x"}, headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 409


async def test_bearer_tokens_work_until_revoked(app: FastAPI) -> None:
    accounts: Accounts = app.state.accounts
    _, token = accounts.create_token("vera", by="test", label="grafana")
    async with client(app) as c:
        ok = await c.get("/api/v1/alarms", headers={"authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        accounts.revoke_tokens("vera", by="test")
        revoked = await c.get("/api/v1/alarms", headers={"authorization": f"Bearer {token}"})
        basic = await c.get("/api/v1/alarms", headers={"authorization": "Basic dmVyYTp4"})
    assert revoked.status_code == basic.status_code == 401
    assert error_of(revoked)["message"] == "unknown or revoked token"


# ---------------------------------------------------------------------------------- roles


@pytest.mark.parametrize(
    ("method", "path", "body", "needs"),
    [
        ("POST", "/api/v1/alarms/fire-1.fire_alarm/ack", {"comment": "x"}, "engineer"),
        (
            "POST",
            "/api/v1/alarms/pump-1.pump_fault/shelve",
            {"minutes": 5, "reason": "x"},
            "engineer",
        ),
        ("POST", "/api/v1/alarms/pump-1.pump_fault/unshelve", {}, "engineer"),
        ("POST", "/api/v1/tickets", {"device": "pump-1", "title": "x"}, "engineer"),
        ("POST", "/api/v1/tickets/1/transition", {"to": "assigned", "assignee": "a"}, "engineer"),
        ("GET", "/api/v1/users", None, "admin"),
        ("POST", "/api/v1/users", {"name": "x1", "role": "viewer", "password": "p" * 10}, "admin"),
        ("GET", "/api/v1/audit", None, "admin"),
    ],
)
async def test_roles_are_enforced(
    app: FastAPI, method: str, path: str, body: dict[str, Any] | None, needs: str
) -> None:
    refused = ["vera"] if needs == "engineer" else ["vera", "eddie"]
    allowed = "ada"
    for name in [*refused, allowed]:
        async with client(app) as c:
            csrf = await login(c, name)
            response = await c.request(method, path, json=body, headers={"x-csrf-token": csrf})
        if name in refused:
            assert response.status_code == 403, (name, response.text)
            assert f"needs the {needs} role" in error_of(response)["message"]
        else:
            assert response.status_code not in (401, 403), (name, response.text)


async def test_viewer_reads_everything(app: FastAPI) -> None:
    async with client(app) as c:
        await login(c, "vera")
        for url in (
            "/api/v1/alarms",
            "/api/v1/alarms?state=all&priority=critical",
            "/api/v1/alarms/fire-1.fire_alarm",
            "/api/v1/alarms/fire-1.fire_alarm/journal",
            "/api/v1/devices",
            "/api/v1/devices/pump-1",
            "/api/v1/points/pump-1/outlet_pressure/history",
            "/api/v1/tickets",
            "/api/v1/assets",
            "/api/v1/site",
            "/metrics",
        ):
            assert (await c.get(url)).status_code == 200, url


# ---------------------------------------------------------------------------------- errors


async def test_unknown_ids_are_404_with_a_message(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "eddie")
        h = {"x-csrf-token": csrf}
        cases = [
            (await c.get("/api/v1/alarms/pump-9.pump_fault"), "no alarm pump-9.pump_fault"),
            (await c.get("/api/v1/alarms/nope.x/journal"), "no alarm nope.x"),
            (await c.post("/api/v1/alarms/nope.x/ack", json={}, headers=h), "no alarm nope.x"),
            (await c.get("/api/v1/devices/pump-9"), "no device 'pump-9'"),
            (await c.get("/api/v1/points/pump-1/nothing/history"), "has no point 'nothing'"),
            (await c.get("/api/v1/tickets/999"), "no ticket 999"),
            (await c.get("/api/v1/nowhere"), "no such route /api/v1/nowhere"),
        ]
    for response, message in cases:
        assert response.status_code == 404, response.text
        assert message in error_of(response)["message"]


async def test_bad_input_is_422_naming_the_field(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "eddie")
        h = {"x-csrf-token": csrf}
        cases = [
            (await c.get("/api/v1/alarms?state=some"), "state"),
            (await c.get("/api/v1/alarms?priority=urgent"), "priority"),
            (
                await c.post(
                    "/api/v1/alarms/pump-1.pump_fault/shelve",
                    json={"minutes": 0, "reason": "x"},
                    headers=h,
                ),
                "minutes",
            ),
            (
                await c.post(
                    "/api/v1/alarms/pump-1.pump_fault/shelve", json={"minutes": 5}, headers=h
                ),
                "reason",
            ),
            (await c.get("/api/v1/points/pump-1/flow/history?from=yesterday"), "from"),
            (
                await c.get(
                    "/api/v1/points/pump-1/flow/history?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"
                ),
                "from must be before to",
            ),
            (
                await c.post("/api/v1/tickets", json={"device": "pump-9", "title": "x"}, headers=h),
                "pump-9",
            ),
            (await c.post("/api/v1/tickets/1/transition", json={"to": "done"}, headers=h), "to"),
            (await c.post("/api/v1/login", content=b"{not json"), "invalid input"),
        ]
    for response, word in cases:
        assert response.status_code == 422, response.text
        assert word in error_of(response)["message"], response.text


async def test_refused_transitions_are_409(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "eddie")
        h = {"x-csrf-token": csrf}
        ack = await c.post("/api/v1/alarms/pump-1.pump_fault/ack", json={}, headers=h)
        unshelve = await c.post("/api/v1/alarms/pump-1.pump_fault/unshelve", headers=h)
        fire = await c.post(
            "/api/v1/alarms/fire-1.fire_alarm/shelve",
            json={"minutes": 10, "reason": "test"},
            headers=h,
        )
    assert ack.status_code == unshelve.status_code == fire.status_code == 409
    assert "nothing to acknowledge" in error_of(ack)["message"]
    assert "not shelvable" in error_of(fire)["message"]


async def test_shelve_and_unshelve_a_normal_alarm(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "eddie")
        h = {"x-csrf-token": csrf}
        shelved = await c.post(
            "/api/v1/alarms/pump-1.high_vibration/shelve",
            json={"minutes": 30, "reason": "bearing replaced, running in"},
            headers=h,
        )
        assert shelved.status_code == 200, shelved.text
        body = shelved.json()
        assert body["state"] == "shelved" and body["shelved_by"] == "eddie"
        assert body["shelve_reason"] == "bearing replaced, running in"
        again = await c.post(
            "/api/v1/alarms/pump-1.high_vibration/shelve",
            json={"minutes": 30, "reason": "x"},
            headers=h,
        )
        assert again.status_code == 409
        back = await c.post("/api/v1/alarms/pump-1.high_vibration/unshelve", headers=h)
        assert back.json()["state"] == "normal"
        journal = (await c.get("/api/v1/alarms/pump-1.high_vibration/journal")).json()["journal"]
    assert [(e["from"], e["to"], e["by"]) for e in journal] == [
        ("normal", "shelved", "eddie"),
        ("shelved", "normal", "eddie"),
    ]


# ---------------------------------------------------------------------------------- tickets


async def test_tickets_raise_move_and_refuse(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "eddie")
        h = {"x-csrf-token": csrf}
        created = await c.post(
            "/api/v1/tickets",
            json={
                "device": "pump-1",
                "title": "Leak at the gland",
                "urgency": "urgent",
                "note": "drips",
            },
            headers=h,
        )
        assert created.status_code == 201, created.text
        ticket = created.json()
        assert ticket["status"] == "open" and ticket["urgency"] == "urgent" and ticket["due"]
        listed = (await c.get("/api/v1/tickets?status=open")).json()["tickets"]
        assert [t["id"] for t in listed] == [ticket["id"]]
        moved = await c.post(
            f"/api/v1/tickets/{ticket['id']}/transition",
            json={"to": "assigned", "assignee": "li.wei", "note": "on it"},
            headers=h,
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == "assigned" and moved.json()["assignee"] == "li.wei"
        skip = await c.post(
            f"/api/v1/tickets/{ticket['id']}/transition", json={"to": "closed"}, headers=h
        )
        assert skip.status_code == 409, skip.text
        one = (await c.get(f"/api/v1/tickets/{ticket['id']}")).json()
        assert [e["action"] for e in one["timeline"]][:2] == ["created", "transition"]
        assert (await c.get("/api/v1/tickets?status=open")).json()["count"] == 0


async def test_tickets_come_most_urgent_first_with_the_devices_name_and_place(
    app: FastAPI,
) -> None:
    async with client(app) as c:
        h = {"x-csrf-token": await login(c, "eddie")}
        for device, title, urgency in [
            ("pump-1", "Repaint the guard", "low"),
            ("lift-1", "Door sensor", "normal"),
            ("fire-1", "Zone 3 detector", "emergency"),
        ]:
            body = {"device": device, "title": title, "urgency": urgency}
            assert (await c.post("/api/v1/tickets", json=body, headers=h)).status_code == 201
        listed = (await c.get("/api/v1/tickets")).json()["tickets"]
        assert [t["urgency"] for t in listed] == ["emergency", "normal", "low"]
        assert listed[0]["device_name"] == {"zh": "消防主机", "en": "消防主机"}
        assert listed[0]["location"] == {"zh": "消防控制室", "en": "消防控制室"}
        one = (await c.get(f"/api/v1/tickets/{listed[2]['id']}")).json()
        assert one["device_name"]["zh"] == "1号生活水泵" and one["location"]["zh"] == "B1 泵房"


async def test_assets_join_the_site_ledger_and_maintenance(app: FastAPI) -> None:
    async with client(app) as c:
        await login(c, "vera")
        assets = (await c.get("/api/v1/assets")).json()["assets"]
    by_device = {a["device"]: a for a in assets}
    assert set(by_device) == {"pump-1", "pump-2", "meter-1", "lift-1", "fire-1", "door-lobby"}
    assert by_device["pump-1"]["template"] == "booster_pump"
    assert "warranty" in by_device["pump-1"] and "plans" in by_device["pump-1"]


# ---------------------------------------------------------------------------------- audit


async def test_every_action_is_audited_with_its_outcome(app: FastAPI) -> None:
    async with client(app) as c:
        csrf = await login(c, "vera")
        await c.post(
            "/api/v1/alarms/fire-1.fire_alarm/ack",
            json={"comment": "sneaky"},
            headers={"x-csrf-token": csrf},
        )
    async with client(app) as c:
        csrf = await login(c, "eddie")
        await c.post(
            "/api/v1/alarms/pump-1.low_pressure/shelve",
            json={"minutes": 15, "reason": "valve work"},
            headers={"x-csrf-token": csrf},
        )
    async with client(app) as c:
        await login(c, "ada")
        entries = (await c.get("/api/v1/audit?limit=50")).json()["entries"]
    actions = [(e["user"], e["action"], e["target"], e["outcome"]) for e in entries]
    assert ("vera", "POST /api/v1/alarms/{alarm_id}/ack", "fire-1.fire_alarm", "403") in actions
    assert (
        "eddie",
        "POST /api/v1/alarms/{alarm_id}/shelve",
        "pump-1.low_pressure",
        "ok",
    ) in actions
    shelve = next(e for e in entries if e["target"] == "pump-1.low_pressure")
    assert shelve["detail"]["reason"] == "valve work" and shelve["detail"]["minutes"] == 15
    assert {("vera", "login", "ok"), ("ada", "login", "ok")} <= {
        (e["user"], e["action"], e["outcome"]) for e in entries
    }


# ---------------------------------------------------------------------------------- headers, metrics


async def test_security_headers_on_pages_and_api(app: FastAPI) -> None:
    async with client(app) as c:
        for url in ("/", "/static/console.js", "/api/v1/alarms", "/healthz"):
            response = await c.get(url)
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert "frame-ancestors 'none'" in csp
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        assert (await c.get("/api/v1/alarms")).headers["cache-control"] == "no-store"


def test_the_console_page_has_no_inline_script_and_no_remote_resource() -> None:
    class Scan(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.problems: list[str] = []
            self.in_script = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            for key in ("src", "href"):
                value = values.get(key) or ""
                if "//" in value:
                    self.problems.append(f"remote {key}: {value}")
            if any(k.startswith("on") for k in values) or "style" in values:
                self.problems.append(f"inline handler or style on <{tag}>")
            if tag == "script" and not values.get("src"):
                self.problems.append("inline <script>")

    scan = Scan()
    scan.feed((CONSOLE / "static" / "index.html").read_text("utf-8"))
    assert scan.problems == []
    for path in (CONSOLE / "static").iterdir():
        text = path.read_text("utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text, path


async def test_metrics_in_prometheus_text(app: FastAPI) -> None:
    _, token = app.state.accounts.create_token("vera", by="test", label="prometheus")
    async with client(app) as c:
        response = await c.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) fgw_\w+ .+", line), line
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    for family in (
        'fgw_device_polls_total{device="pump-1"}',
        'fgw_device_errors_total{device="door-lobby"}',
        "fgw_readings_per_second",
        'fgw_alarms{state="normal"}',
        'fgw_alarms{state="active_unack"}',
        'fgw_alarms_not_normal{priority="critical"}',
        "fgw_engine_queue_depth",
        "fgw_mqtt_outbox_depth",
        "fgw_stream_clients",
        "fgw_written_bytes_total",
        "fgw_storage_free_bytes",
        "fgw_storage_wear_warning",
    ):
        assert family in samples, family
    context: ComponentContext = app.state.context
    assert samples['fgw_alarms{state="normal"}'] == len(context.alarms.all())


# ---------------------------------------------------------------------------------- catalogues


def test_message_catalogues_cover_every_text_of_the_console() -> None:
    zh = json.loads((CONSOLE / "i18n" / "zh-CN.json").read_text("utf-8"))
    en = json.loads((CONSOLE / "i18n" / "en.json").read_text("utf-8"))
    assert set(zh) == set(en)
    assert all(v.strip() for v in [*zh.values(), *en.values()])
    js = (CONSOLE / "static" / "console.js").read_text("utf-8")
    html = (CONSOLE / "static" / "index.html").read_text("utf-8")
    used = set(re.findall(r'\bt\("([\w.]+)"', js)) | set(
        re.findall(r'data-i18n(?:-title)?="([^"]+)"', html)
    )
    static = {k for k in used if not k.endswith(".")}
    assert static - set(zh) == set()
    dynamic = {
        "state.": ["normal", "active_unack", "active_ack", "rtn_unack", "shelved", "suppressed",
                   "out_of_service"],
        "priority.": ["critical", "high", "medium", "low"],
        "status.": ["open", "assigned", "in_progress", "resolved", "closed", "cancelled"],
        "urgency.": ["emergency", "urgent", "normal", "low"],
        "role.": ["viewer", "engineer", "admin"],
        "quality.": ["good", "bad", "stale"],
        "kind.": ["corrective", "preventive"],
    }  # fmt: skip
    for prefix, names in dynamic.items():
        assert {prefix + n for n in names} <= set(zh), prefix
    # the two languages really differ where words are involved
    assert zh["nav.alarms"] != en["nav.alarms"]
