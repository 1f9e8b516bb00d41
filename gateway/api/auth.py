"""Login and logout for the console, who am I, and the admin's view of users and the audit log."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from gateway.accounts import AccountError, LoginThrottled
from gateway.api.errors import ApiError
from gateway.api.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Admin,
    Viewer,
    accounts_of,
    is_https,
    note_audit,
)

router = APIRouter(prefix="/api/v1", tags=["accounts"])


class Login(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "engineer", "admin"]
    password: str = Field(min_length=8, max_length=1024)


@router.post("/login", summary="Log in: sets the session cookie and returns the CSRF token")
async def login(*, body: Login, request: Request, response: Response) -> dict[str, Any]:
    accounts = accounts_of(request)
    client = request.client.host if request.client else ""
    try:
        # argon2 is slow on purpose: verify off the event loop so alarms keep flowing
        user = await asyncio.to_thread(
            accounts.authenticate, body.name, body.password, client=client
        )
    except LoginThrottled as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    if user is None:
        raise ApiError(401, "wrong user name or password")
    hours = request.app.state.session_hours
    secret, session = await asyncio.to_thread(accounts.create_session, user, hours)
    secure = is_https(request)
    max_age = int(hours * 3600)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE, session.csrf, max_age=max_age, httponly=False, samesite="strict",
        secure=secure, path="/",
    )  # fmt: skip
    return {"name": user.name, "role": user.role, "csrf": session.csrf}


@router.post("/logout", summary="End this session")
async def logout(*, request: Request, response: Response, principal: Viewer) -> dict[str, Any]:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal.session is not None:
        accounts_of(request).end_session(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"ok": True}


@router.get("/me", summary="Who is logged in, and the CSRF token of the session")
async def me(*, principal: Viewer) -> dict[str, Any]:
    return {
        "name": principal.name,
        "role": principal.user.role,
        "csrf": principal.session.csrf if principal.session else None,
    }


@router.get("/users", summary="Every user (admin)")
async def list_users(*, request: Request, _: Admin) -> dict[str, Any]:
    return {"users": [{"name": u.name, "role": u.role} for u in accounts_of(request).users()]}


@router.post("/users", status_code=201, summary="Add a user (admin)")
async def add_user(*, body: NewUser, request: Request, principal: Admin) -> dict[str, Any]:
    note_audit(request, body.name, role=body.role)
    accounts = accounts_of(request)
    try:
        user = await asyncio.to_thread(
            accounts.add_user, body.name, body.role, body.password, by=principal.name
        )
    except AccountError as exc:
        status = 409 if "exists" in str(exc) else 422
        raise ApiError(status, str(exc)) from None
    return {"name": user.name, "role": user.role}


@router.get("/audit", summary="The newest audit entries (admin)")
async def audit_log(
    *,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    user: Annotated[str | None, Query(max_length=64)] = None,
    _: Admin,
) -> dict[str, Any]:
    entries = accounts_of(request).audit_log(limit, user)
    return {
        "entries": [
            {
                "seq": e.seq,
                "at": e.at,
                "user": e.user,
                "action": e.action,
                "target": e.target,
                "outcome": e.outcome,
                "detail": e.detail,
            }
            for e in entries
        ]
    }
