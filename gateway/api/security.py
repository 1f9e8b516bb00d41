"""Who is asking, may they, and the headers that keep a browser from being turned against the gateway.

Two ways in (PRODUCT §7): the console's session cookie, or `Authorization: Bearer TOKEN`. A cookie is
sent by the browser on its own, so every state-changing request made with one must also carry the
session's CSRF token in `X-CSRF-Token` (the console reads it from the `fgw_csrf` cookie, which a
page of another site cannot read). A bearer token is never sent implicitly, so it needs no CSRF token.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.accounts import Accounts, Role, Session, User
from gateway.api.errors import ApiError

log = logging.getLogger("fgw.api")

SESSION_COOKIE = "fgw_session"
CSRF_COOKIE = "fgw_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: the user, and the session when it came with a cookie."""

    user: User
    session: Session | None = None

    @property
    def name(self) -> str:
        return self.user.name


def accounts_of(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


def is_https(request: Request) -> bool:
    """Behind a TLS-terminating proxy the scheme is in X-Forwarded-Proto."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or proto == "https"


def authenticate(request: Request) -> Principal:
    accounts = accounts_of(request)
    header = request.headers.get("authorization", "")
    principal: Principal | None = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Authorization must be 'Bearer TOKEN'", headers=_challenge())
        user = accounts.token_user(token.strip())
        if user is None:
            raise ApiError(401, "unknown or revoked token", headers=_challenge())
        principal = Principal(user)
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        session = accounts.session(cookie) if cookie else None
        if session is None:
            message = "your session has ended: log in again" if cookie else "log in first"
            raise ApiError(401, message, headers=_challenge())
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not secrets.compare_digest(sent, session.csrf):
                request.state.user = session.user.name
                raise ApiError(403, "missing or wrong CSRF token (X-CSRF-Token): reload the page")
        principal = Principal(session.user, session)
    request.state.user = principal.name
    return principal


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="fgw"'}


def requires(role: Role) -> Callable[[Principal], Principal]:
    """A dependency: the caller, who must have at least `role`."""

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.user.may(role):
            raise ApiError(
                403, f"this needs the {role} role; {principal.name} is {principal.user.role}"
            )
        return principal

    return check


viewer = requires("viewer")
engineer = requires("engineer")
admin = requires("admin")

Viewer = Annotated[Principal, Depends(viewer)]
Engineer = Annotated[Principal, Depends(engineer)]
Admin = Annotated[Principal, Depends(admin)]


def note_audit(request: Request, target: str, **detail: Any) -> None:
    """What the audit entry of this request should say beyond method, path and outcome."""
    request.state.audit = {"target": target, **detail}


class SecurityHeaders:
    """Adds the security headers to every response (pure ASGI: streaming responses stay streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                if api and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AuditTrail:
    """Writes one audit entry for every state-changing request, whatever its outcome.

    Routes add detail with `note_audit`; refusals (401, 403, 409, 422…) are audited too, since a
    refused acknowledgement is exactly what one wants to find later. Logins audit themselves.
    """

    def __init__(self, app: ASGIApp, accounts: Callable[[], Accounts]) -> None:
        self.app = app
        self.accounts = accounts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 500

        async def keep_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, keep_status)
        finally:
            if scope["path"] != "/api/v1/login":
                self._write(scope, status)

    def _write(self, scope: Scope, status: int) -> None:
        state = scope.get("state", {})
        detail = dict(state.get("audit") or {})
        params = scope.get("path_params") or {}
        default = "/".join(str(v) for v in params.values()) if params else scope["path"]
        target = str(detail.pop("target", default))
        detail["path"] = scope["path"]
        client = scope.get("client")
        if client:
            detail["client"] = client[0]
        try:
            self.accounts().audit(
                str(state.get("user") or "-"),
                f"{scope['method']} {_route_name(scope)}",
                target,
                "ok" if status < 400 else str(status),
                json.loads(json.dumps(detail, default=str)),
            )
        except Exception:  # the audit must never turn a done action into an error
            log.exception("could not write the audit entry for %s", scope["path"])


def _route_name(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", scope["path"]))
