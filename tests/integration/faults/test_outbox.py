"""The SQLite outbox keeps what was peeked on disk even if the process is killed (SIGKILL in a
subprocess: the commit happens before anything is peeked).

The outbox contract for both implementations: tests/unit/gateway/test_outbox.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.outbox_sqlite import SqliteOutbox


def test_what_was_peeked_is_on_disk_even_if_the_process_is_killed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    script = (
        "import os, signal, sys\n"
        "from gateway.outbox_sqlite import SqliteOutbox\n"
        f"box = SqliteOutbox({str(path)!r})\n"
        "for i in range(50):\n"
        "    box.put(f'event{i}', b'x', qos=1, retain=False)\n"
        "box.peek(20)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=30, cwd=os.getcwd())
    assert done.returncode == -9
    box = SqliteOutbox(path)
    assert [m.topic for m in box.peek(100)] == [f"event{i}" for i in range(50)]
    box.close()
