"""The `fgw user` and `fgw token` commands as real processes, on the accounts the console reads.

The accounts themselves (hashes, roles, sessions, throttling, audit): tests/unit/gateway/test_accounts.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.accounts import Accounts, User, fast_hasher
from tests.api_support import console_site
from tests.support import free_port


def fgw(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_user_and_token_commands(tmp_path: Path) -> None:
    site = str(console_site(tmp_path, free_port()))
    added = fgw("user", "add", site, "zhang.san", "--role", "engineer", stdin="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    assert "s3cret-pass" not in added.stdout + added.stderr
    again = fgw("user", "add", site, "zhang.san", "--role", "viewer", stdin="s3cret-pass\n")
    assert again.returncode == 1 and "exists already" in again.stderr
    weak = fgw("user", "add", site, "li.si", "--role", "viewer", stdin="short\n")
    assert weak.returncode == 1 and "at least 8" in weak.stderr
    bad_role = fgw("user", "add", site, "li.si", "--role", "root", stdin="s3cret-pass\n")
    assert bad_role.returncode == 2
    assert fgw("user", "list", site).stdout == "zhang.san\tengineer\n"
    assert fgw("user", "passwd", site, "zhang.san", stdin="n3w-password\n").returncode == 0
    assert fgw("user", "role", site, "zhang.san", "admin").returncode == 0

    created = fgw("token", "create", site, "zhang.san", "--label", "prometheus")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    storage = tmp_path / "state"
    accounts = Accounts(storage, hasher=fast_hasher())
    try:
        assert accounts.token_user(token) == User("zhang.san", "admin")
        assert accounts.authenticate("zhang.san", "n3w-password") is not None
        listed = fgw("token", "list", site, "zhang.san").stdout
        assert "prometheus" in listed and token not in listed
        assert fgw("token", "revoke", site, "zhang.san").returncode == 0
        assert accounts.token_user(token) is None
        assert fgw("token", "revoke", site, "nobody").returncode == 1
        assert fgw("token", "create", site, "nobody").returncode == 1
        actors = {e.user for e in accounts.audit_log(50)}
        assert any(a.startswith("cli:") for a in actors)
    finally:
        accounts.close()
