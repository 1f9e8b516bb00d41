"""Accounts: argon2 hashes, roles, sessions, tokens, throttling on an injected clock, the audit log.

The `fgw user` / `fgw token` commands as real processes: tests/integration/cli/test_accounts.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.accounts import (
    FAILURE_WINDOW,
    MAX_FAILURES,
    AccountError,
    Accounts,
    LoginThrottled,
    User,
    fast_hasher,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(tmp_path: Path, clock: Clock) -> Accounts:
    a = Accounts(tmp_path, hasher=fast_hasher(), clock=clock)
    yield a
    a.close()


def test_file_is_private_and_holds_no_secret_in_clear(accounts: Accounts) -> None:
    accounts.add_user("li.wei", "engineer", "pump-room-42", by="test")
    _, token = accounts.create_token("li.wei", by="test")
    secret, _ = accounts.create_session(User("li.wei", "engineer"), 1)
    assert stat.S_IMODE(os.stat(accounts.path).st_mode) == 0o600
    accounts.close()
    raw = b"".join(p.read_bytes() for p in accounts.path.parent.glob("accounts.sqlite3*"))
    for clear in ("pump-room-42", token, secret):
        assert clear.encode() not in raw
    assert b"$argon2id$" in raw


def test_the_product_hasher_is_argon2id_with_real_costs(tmp_path: Path) -> None:
    a = Accounts(tmp_path)
    try:
        a.add_user("ops", "admin", "a-long-password", by="test")
        digest = a._one("SELECT hash FROM users WHERE name = 'ops'", ())
        assert digest is not None and digest[0].startswith("$argon2id$")
        assert "m=65536" in digest[0]  # the library's default memory cost, not the test one
    finally:
        a.close()


def test_users_roles_and_bad_input(accounts: Accounts) -> None:
    accounts.add_user("vera", "viewer", "password-1", by="test")
    accounts.add_user("ada", "admin", "password-2", by="test")
    assert [u.name for u in accounts.users()] == ["ada", "vera"]
    assert User("ada", "admin").may("engineer") and not User("vera", "viewer").may("engineer")
    with pytest.raises(AccountError, match="exists already"):
        accounts.add_user("vera", "viewer", "password-1", by="test")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.add_user("bob", "root", "password-1", by="test")
    with pytest.raises(AccountError, match="at least 8"):
        accounts.add_user("bob", "viewer", "short", by="test")
    with pytest.raises(AccountError, match="bad user name"):
        accounts.add_user("bob smith", "viewer", "password-1", by="test")
    accounts.set_role("vera", "engineer", by="test")
    assert accounts.get_user("vera") == User("vera", "engineer")
    with pytest.raises(AccountError, match="no user"):
        accounts.set_role("nobody", "admin", by="test")


def test_authenticate_and_sessions_expire(accounts: Accounts, clock: Clock) -> None:
    accounts.add_user("eddie", "engineer", "password-1", by="test")
    user = accounts.authenticate("eddie", "password-1", client="127.0.0.1")
    assert user == User("eddie", "engineer")
    assert accounts.authenticate("eddie", "password-2") is None
    secret, session = accounts.create_session(user, hours=2)
    assert accounts.session(secret) == session
    clock.now += 2 * 3600 - 1
    assert accounts.session(secret) is not None
    clock.now += 2
    assert accounts.session(secret) is None


def test_a_new_password_ends_every_session(accounts: Accounts) -> None:
    accounts.add_user("eddie", "engineer", "password-1", by="test")
    secret, _ = accounts.create_session(User("eddie", "engineer"), 8)
    accounts.set_password("eddie", "password-9", by="test")
    assert accounts.session(secret) is None
    assert accounts.authenticate("eddie", "password-1") is None
    assert accounts.authenticate("eddie", "password-9") is not None


def test_throttling_per_name_and_client_and_its_window(accounts: Accounts, clock: Clock) -> None:
    accounts.add_user("eddie", "engineer", "password-1", by="test")
    for _ in range(MAX_FAILURES):
        assert accounts.authenticate("eddie", "wrong-one", client="10.0.0.5") is None
    with pytest.raises(LoginThrottled) as caught:
        accounts.authenticate("eddie", "password-1", client="10.0.0.6")
    assert 0 < caught.value.retry_after <= FAILURE_WINDOW
    # the guessing address is blocked for other names too
    with pytest.raises(LoginThrottled):
        accounts.authenticate("someone", "x", client="10.0.0.5")
    clock.now += FAILURE_WINDOW + 1
    assert accounts.authenticate("eddie", "password-1", client="10.0.0.5") is not None
    outcomes = [e.outcome for e in accounts.audit_log(50) if e.action == "login"]
    assert outcomes.count("denied") == MAX_FAILURES and "throttled" in outcomes


def test_tokens_act_as_their_user_until_revoked(accounts: Accounts) -> None:
    accounts.add_user("grafana", "viewer", "password-1", by="test")
    one_id, one = accounts.create_token("grafana", by="test", label="a")
    _, two = accounts.create_token("grafana", by="test", label="b")
    assert one.startswith("fgw_") and accounts.token_user(one) == User("grafana", "viewer")
    assert accounts.revoke_tokens("grafana", by="test", token_id=one_id) == 1
    assert accounts.token_user(one) is None and accounts.token_user(two) is not None
    assert accounts.revoke_tokens("grafana", by="test") == 1
    assert accounts.token_user(two) is None
    assert accounts.token_user("fgw_made-up") is None
    with pytest.raises(AccountError, match="no user"):
        accounts.create_token("nobody", by="test")
    actions = [(e.user, e.action, e.target) for e in accounts.audit_log(20)]
    assert ("test", "token.create", "grafana") in actions
    assert ("test", "token.revoke", "grafana") in actions


# ---------------------------------------------------------------------------------- the commands
