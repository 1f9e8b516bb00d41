"""`fgw user add|list|passwd|role SITE …` and `fgw token create|list|revoke SITE USER` (PRODUCT §7, §8).

Passwords are read from standard input — one line, or a hidden prompt on a terminal — never from the
command line, where `ps` and shell history would keep them. A token is printed once; only its hash is
stored. Every change is audited as `cli:<login name>`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING

from gateway.commands import SITE_HELP

if TYPE_CHECKING:
    from gateway.accounts import Accounts

ROLES = ("viewer", "engineer", "admin")
NAME_HELP = "the login name: letters, digits and _ . @ -, starting with a letter"
ROLE_HELP = "viewer: reads; engineer: also acknowledges, shelves, works tickets; admin: also users"
USER_HELP = "the user the token acts for (with that user's role)"


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    user = subparsers.add_parser("user", help="console and API users")
    users = user.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    p = users.add_parser("add", help="add a user; the password is read from stdin")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("name", help=NAME_HELP)
    p.add_argument("--role", choices=ROLES, required=True, help=ROLE_HELP)
    p.set_defaults(func=cmd_user_add)
    p = users.add_parser("list", help="list users and their roles")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.set_defaults(func=cmd_user_list)
    p = users.add_parser("passwd", help="set a new password (from stdin); ends the user's sessions")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("name", help="the user's name")
    p.set_defaults(func=cmd_user_passwd)
    p = users.add_parser("role", help="change a user's role")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("name", help="the user's name")
    p.add_argument("role", choices=ROLES, help=ROLE_HELP)
    p.set_defaults(func=cmd_user_role)

    token = subparsers.add_parser("token", help="bearer tokens for API clients")
    tokens = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    p = tokens.add_parser("create", help="print a new token acting with the user's role")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("user", help=USER_HELP)
    p.add_argument("--label", default="", help="what the token is for, e.g. prometheus")
    p.set_defaults(func=cmd_token_create)
    p = tokens.add_parser("list", help="list a user's tokens (ids and labels, never the tokens)")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("user", help=USER_HELP)
    p.set_defaults(func=cmd_token_list)
    p = tokens.add_parser("revoke", help="revoke the user's tokens (all, or one by --id)")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("user", help=USER_HELP)
    p.add_argument("--id", dest="token_id", help="the token id shown by `fgw token list`")
    p.set_defaults(func=cmd_token_revoke)


def _open(site_path: str) -> Accounts:
    from gateway.accounts import Accounts
    from gateway.cli import _load

    return Accounts(_load(site_path).storage_dir)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise SystemExit("fgw: the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _run(function: object) -> int:
    from gateway.accounts import AccountError

    try:
        return int(function())  # type: ignore[operator]
    except AccountError as exc:
        print(f"fgw: {exc}", file=sys.stderr)
        return 1


def cmd_user_add(args: argparse.Namespace) -> int:
    accounts = _open(args.site)

    def add() -> int:
        user = accounts.add_user(args.name, args.role, _password(), by=_actor())
        print(f"user {user.name} added ({user.role})")
        return 0

    try:
        return _run(add)
    finally:
        accounts.close()


def cmd_user_list(args: argparse.Namespace) -> int:
    accounts = _open(args.site)
    try:
        for user in accounts.users():
            print(f"{user.name}\t{user.role}")
    finally:
        accounts.close()
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    accounts = _open(args.site)

    def passwd() -> int:
        accounts.set_password(args.name, _password(), by=_actor())
        print(f"password of {args.name} changed; their sessions ended")
        return 0

    try:
        return _run(passwd)
    finally:
        accounts.close()


def cmd_user_role(args: argparse.Namespace) -> int:
    accounts = _open(args.site)

    def role() -> int:
        accounts.set_role(args.name, args.role, by=_actor())
        print(f"{args.name} is now {args.role}")
        return 0

    try:
        return _run(role)
    finally:
        accounts.close()


def cmd_token_create(args: argparse.Namespace) -> int:
    accounts = _open(args.site)

    def create() -> int:
        token_id, token = accounts.create_token(args.user, by=_actor(), label=args.label)
        print(f"# token {token_id} for {args.user}; shown once, keep it secret", file=sys.stderr)
        print(token)
        return 0

    try:
        return _run(create)
    finally:
        accounts.close()


def cmd_token_list(args: argparse.Namespace) -> int:
    """Tokens for people: created and revoked times in the site's zone, with the zone shown."""
    from zoneinfo import ZoneInfo

    from gateway.accounts import Accounts
    from gateway.cli import _load
    from gateway.timefmt import local_time

    site = _load(args.site)
    zone = ZoneInfo(site.file.site.timezone)
    accounts = Accounts(site.storage_dir)
    try:
        for row in accounts.tokens(args.user):
            revoked = local_time(row["revoked_at"], zone)
            state = f"revoked {revoked}" if row["revoked_at"] else "active"
            print(f"{row['id']}\t{local_time(row['created_at'], zone)}\t{state}\t{row['label']}")
    finally:
        accounts.close()
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    accounts = _open(args.site)
    try:
        if accounts.get_user(args.user) is None:
            print(f"fgw: no user {args.user!r}", file=sys.stderr)
            return 1
        count = accounts.revoke_tokens(args.user, by=_actor(), token_id=args.token_id)
        print(f"revoked {count} token(s) of {args.user}")
        return 0 if count or args.token_id is None else 1
    finally:
        accounts.close()
