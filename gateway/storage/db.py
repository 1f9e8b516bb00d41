"""Opening the gateway's SQLite files, one way for all of them.

Every store (alarms, tickets, accounts, history, outbox) wants the same things from a
file: private from the first byte (mode 0600 in a 0700 folder, since the files hold alarm history,
password hashes and queued messages), WAL so that a reader never blocks the writer, a busy timeout
instead of an immediate "database is locked", and explicit transactions that roll back on any error.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_database(
    path: Path, *, synchronous: str = "FULL", fresh_pragmas: tuple[str, ...] = ()
) -> tuple[sqlite3.Connection, bool]:
    """Open `path` (creating it private) in WAL mode; returns the connection and whether it is new.

    Args:
        path: the database file; its folder is created (0700) if missing.
        synchronous: `FULL` where a commit must survive a power cut (alarms, tickets, outbox),
            `NORMAL` where the last second may be lost (history, bulk queues).
        fresh_pragmas: pragmas that only take effect before the first table (e.g.
            `auto_vacuum=INCREMENTAL`), run on a new file only.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = not path.exists() or path.stat().st_size == 0
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)  # exists, private, before a byte is written
    os.close(fd)
    if fresh:
        os.chmod(path, 0o600)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if fresh:
        for pragma in fresh_pragmas:
            db.execute(f"PRAGMA {pragma}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA busy_timeout=5000")
    return db, fresh


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on any exception (which is re-raised)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
