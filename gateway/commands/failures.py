"""Expected failures of `fgw` commands, told in one line: what failed and what to check.

A broker that is down, a simulator that is not running, a port in use, a database another process
holds: these happen to every installer and must not print a traceback. `describe` turns such an
exception into one line; `main` prints it and exits 1. An exception it does not know is a bug and
keeps its traceback (that is what a bug report needs).

Commands that know more (the broker's address, the site file) raise `CommandFailure` with the whole
line themselves.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from collections.abc import Iterator


class CommandFailure(Exception):
    """An expected failure whose message is the one line the user reads."""


def describe(exc: BaseException) -> str | None:
    """One line for an expected failure, or None when `exc` is not one (a bug: show it).

    An exception group (from a task group) is described by its first describable leaf, and only
    when every leaf is expected.
    """
    if isinstance(exc, BaseExceptionGroup):
        lines = [describe(leaf) for leaf in _leaves(exc)]
        if not lines or any(line is None for line in lines):
            return None
        return lines[0]
    if isinstance(exc, CommandFailure):
        return str(exc)
    if isinstance(exc, sqlite3.Error):
        return _database(exc)
    if _is_mqtt_error(exc):
        return (
            f"the MQTT broker is not reachable ({exc}): is Mosquitto (or `fgw demo`) running? "
            "check mqtt.host, mqtt.port and the credentials in the site file"
        )
    if isinstance(exc, TimeoutError):
        return (
            f"timed out{f' ({exc})' if str(exc) else ''}: is the other side running and reachable?"
        )
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _is_mqtt_error(exc: BaseException) -> bool:
    """aiomqtt's and our link's errors, without importing either (they may not be loaded)."""
    for module, name in (("aiomqtt", "MqttError"), ("drivers.mqtt_link", "LinkError")):
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and isinstance(exc, kind):
            return True
    return False


def _database(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return (
            f"the database is busy ({text}): another process holds a write lock on it; "
            "check for a stuck `fgw` command or a tool with the storage folder's gateway.sqlite3 open"
        )
    if "unable to open" in text:
        return f"cannot open the database ({text}): check that storage.path exists and is writable"
    return (
        f"database error ({text}): check storage.path in the site file "
        "(disk full, read-only, or a damaged file)"
    )


def _os_error(exc: OSError) -> str:
    what = exc.strerror or str(exc)
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"an address is already in use ({exc}): another process listens there; "
            "stop it or choose another port in the site file"
        )
    if exc.errno == errno.ECONNREFUSED:
        return f"connection refused ({exc}): is the server at that address running?"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied:{where or ' ' + what}: check the owner and mode"
    if exc.errno == errno.ENOSPC:
        return f"the disk is full{':' + where if where else ''}: free space under storage.path"
    if exc.errno == errno.ENOENT:
        return f"not found:{where or ' ' + what}: check the path"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return (
            f"{what}:{where or ''}: a file stands where a folder is needed; "
            "check storage.path in the site file"
        )
    if exc.errno is None:
        return what  # our own OSErrors say what to check themselves
    return f"{what}{':' + where if where else ''}: check the paths in the site file and the disk"
