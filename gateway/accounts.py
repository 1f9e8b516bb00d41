"""Console and API accounts: users, roles, sessions, bearer tokens, login throttling and the audit log.

Why a separate SQLite file (`<storage>/accounts.sqlite3`, mode 0600): credentials must never travel
with an alarm journal someone copies for a report, and the `fgw user`/`fgw token` commands must be
able to change accounts while `fgw run` serves the console (WAL lets both open it).

Passwords are stored as argon2id hashes (`argon2-cffi`): salted and deliberately slow. Session ids
and bearer tokens are long random strings, so a fast SHA-256 of them is enough to store: a stolen
database gives no usable token. Every action — logins (good or bad), account changes, operator
actions through the API — goes to the `audit` table with who, what, on what, and the outcome.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.storage.db import open_database, transaction

Role = Literal["viewer", "engineer", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "engineer", "admin")
"""In order of power: each role may do everything the ones before it may."""

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD = 8
TOKEN_PREFIX = "fgw_"

MAX_FAILURES = 5
"""Failed logins (per user name, and per client address) allowed within `FAILURE_WINDOW`."""
FAILURE_WINDOW = 300.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL,           -- argon2id, salted
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,        -- short public id, to name a token when revoking it
    user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    digest      TEXT NOT NULL UNIQUE,    -- sha256 of the token
    label       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    revoked_at  REAL
);
CREATE TABLE IF NOT EXISTS sessions (
    digest      TEXT PRIMARY KEY,        -- sha256 of the session cookie
    user        TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    csrf        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    user        TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL            -- JSON
);
"""


class AccountError(Exception):
    """A request about accounts that cannot be done (unknown user, bad name, weak password…)."""


class LoginThrottled(Exception):
    """Too many failed logins: wait `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many failed logins: try again in {self.retry_after} s")


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role

    def may(self, role: Role) -> bool:
        """Whether this user has at least `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: float
    user: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def fast_hasher() -> PasswordHasher:
    """An argon2id hasher with small costs, for tests only: the default costs are the product's."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class Accounts:
    """The accounts database of one site. Thread-safe: the API verifies passwords off the loop.

    Args:
        folder: the site's storage folder.
        hasher: argon2 parameters (the library's defaults unless a test passes `fast_hasher()`).
        clock: wall-clock seconds (injectable for expiry and throttling tests).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.folder / "accounts.sqlite3"
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        self._lock = threading.RLock()
        self._db, _ = open_database(self.path)  # 0600 before a single secret is written
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._failures: dict[str, deque[float]] = {}
        self._dummy_hash: str | None = None

    @property
    def _dummy(self) -> str:
        """A hash to verify against for an unknown user: same time, no user enumeration."""
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(8))
        return self._dummy_hash

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._db) as db:
            yield db

    def _one(self, sql: str, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._db.execute(sql, args).fetchone()
            return row

    # ------------------------------------------------------------------ users

    def add_user(self, name: str, role: str, password: str, *, by: str) -> User:
        if not NAME_PATTERN.match(name):
            raise AccountError(
                f"bad user name {name!r}: letters, digits and _ . @ -, starting with a letter"
            )
        checked = _role(role)
        _check_password(password)
        digest = self._hasher.hash(password)
        now = self._clock()
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO users (name, role, hash, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, checked, digest, now, now),
                )
        except sqlite3.IntegrityError:
            raise AccountError(f"user {name!r} exists already") from None
        self.audit(by, "user.add", name, "ok", {"role": checked})
        return User(name, checked)

    def set_password(self, name: str, password: str, *, by: str) -> None:
        """A new password ends every session of the user (a stolen cookie stops working)."""
        _check_password(password)
        digest = self._hasher.hash(password)
        with self._tx() as db:
            changed = db.execute(
                "UPDATE users SET hash = ?, updated_at = ? WHERE name = ?",
                (digest, self._clock(), name),
            ).rowcount
            if not changed:
                raise AccountError(f"no user {name!r}")
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
        self.audit(by, "user.passwd", name, "ok")

    def set_role(self, name: str, role: str, *, by: str) -> None:
        checked = _role(role)
        with self._tx() as db:
            if not db.execute(
                "UPDATE users SET role = ?, updated_at = ? WHERE name = ?",
                (checked, self._clock(), name),
            ).rowcount:
                raise AccountError(f"no user {name!r}")
        self.audit(by, "user.role", name, "ok", {"role": checked})

    def get_user(self, name: str) -> User | None:
        row = self._one("SELECT name, role FROM users WHERE name = ?", (name,))
        return User(row[0], row[1]) if row else None

    def users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute("SELECT name, role FROM users ORDER BY name").fetchall()
        return [User(name, role) for name, role in rows]

    # ------------------------------------------------------------------ login

    def authenticate(self, name: str, password: str, *, client: str = "") -> User | None:
        """The user if the password is right; None otherwise. Failures are counted and audited.

        Raises:
            LoginThrottled: too many recent failures for this name or this client address.
        """
        now = self._clock()
        keys = [f"user:{name}"] + ([f"client:{client}"] if client else [])
        with self._lock:  # logins are verified in worker threads
            waits = [
                recent[0] + FAILURE_WINDOW - now
                for recent in (self._recent_failures(key, now) for key in keys)
                if len(recent) >= MAX_FAILURES
            ]
        if waits:
            self.audit(name or "-", "login", name, "throttled", {"client": client})
            raise LoginThrottled(max(waits))
        row = self._one("SELECT name, role, hash FROM users WHERE name = ?", (name,))
        ok = False
        try:
            ok = self._hasher.verify(row[2] if row else self._dummy, password) and row is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            with self._lock:
                for key in keys:
                    self._failures.setdefault(key, deque()).append(now)
            self.audit(name or "-", "login", name, "denied", {"client": client})
            return None
        with self._lock:
            self._failures.pop(f"user:{name}", None)
        if self._hasher.check_needs_rehash(row[2]):
            self._rehash(name, password)
        self.audit(name, "login", name, "ok", {"client": client})
        return User(row[0], row[1])

    def _recent_failures(self, key: str, now: float) -> deque[float]:
        recent = self._failures.get(key, deque())
        while recent and recent[0] <= now - FAILURE_WINDOW:
            recent.popleft()
        if not recent:
            self._failures.pop(key, None)
        return recent

    def _rehash(self, name: str, password: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE users SET hash = ? WHERE name = ?", (self._hasher.hash(password), name)
            )

    # ------------------------------------------------------------------ sessions

    def create_session(self, user: User, hours: float) -> tuple[str, Session]:
        """A new session: (the cookie value, the session with its CSRF token)."""
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = self._clock()
        expires = now + hours * 3600
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT INTO sessions (digest, user, csrf, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (_digest(secret), user.name, csrf, now, expires),
            )
        return secret, Session(user, csrf, expires)

    def session(self, secret: str) -> Session | None:
        row = self._one(
            "SELECT u.name, u.role, s.csrf, s.expires_at FROM sessions s "
            "JOIN users u ON u.name = s.user WHERE s.digest = ?",
            (_digest(secret),),
        )
        if row is None or row[3] <= self._clock():
            return None
        return Session(User(row[0], row[1]), row[2], row[3])

    def end_session(self, secret: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE digest = ?", (_digest(secret),))

    # ------------------------------------------------------------------ bearer tokens

    def create_token(self, name: str, *, by: str, label: str = "") -> tuple[str, str]:
        """A new bearer token acting as `name`: (token id, the token — shown once, stored hashed)."""
        if self.get_user(name) is None:
            raise AccountError(f"no user {name!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = secrets.token_hex(4)
        with self._tx() as db:
            db.execute(
                "INSERT INTO tokens (id, user, digest, label, created_at) VALUES (?, ?, ?, ?, ?)",
                (token_id, name, _digest(token), label, self._clock()),
            )
        self.audit(by, "token.create", name, "ok", {"token_id": token_id, "label": label})
        return token_id, token

    def revoke_tokens(self, name: str, *, by: str, token_id: str | None = None) -> int:
        """Revoke one token of the user (by id), or all of them; returns how many."""
        sql = "UPDATE tokens SET revoked_at = ? WHERE user = ? AND revoked_at IS NULL"
        args: tuple[Any, ...] = (self._clock(), name)
        if token_id is not None:
            sql += " AND id = ?"
            args += (token_id,)
        with self._tx() as db:
            count = int(db.execute(sql, args).rowcount)
        self.audit(by, "token.revoke", name, "ok", {"token_id": token_id, "count": count})
        return count

    def tokens(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, label, created_at, revoked_at FROM tokens WHERE user = ? "
                "ORDER BY created_at",
                (name,),
            ).fetchall()
        return [
            dict(zip(("id", "label", "created_at", "revoked_at"), r, strict=True)) for r in rows
        ]

    def token_user(self, token: str) -> User | None:
        row = self._one(
            "SELECT u.name, u.role FROM tokens t JOIN users u ON u.name = t.user "
            "WHERE t.digest = ? AND t.revoked_at IS NULL",
            (_digest(token),),
        )
        return User(row[0], row[1]) if row else None

    # ------------------------------------------------------------------ audit

    def audit(
        self,
        user: str,
        action: str,
        target: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO audit (at, user, action, target, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self._clock(),
                    user,
                    action,
                    target,
                    outcome,
                    json.dumps(detail or {}, ensure_ascii=False, default=str),
                ),
            )

    def audit_log(self, limit: int = 200, user: str | None = None) -> list[AuditEntry]:
        """The newest `limit` entries, newest first."""
        sql = "SELECT seq, at, user, action, target, outcome, detail FROM audit"
        args: tuple[Any, ...] = ()
        if user is not None:
            sql += " WHERE user = ?"
            args = (user,)
        sql += " ORDER BY seq DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [AuditEntry(*row[:6], detail=json.loads(row[6])) for row in rows]


def _role(role: str) -> Role:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise AccountError("the password is longer than 1024 characters")
