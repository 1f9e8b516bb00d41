"""A gateway process for tests that must kill it: `fgw run` plus operator commands on stdin.

`python -m tests.gateway_child SITE` runs the same `Gateway` as `fgw run SITE` and also reads JSON
lines such as `{"op": "acknowledge", "args": ["fire-1.fire_alarm", "ann", "on it"]}` from stdin,
calls that public method of the gateway on its event loop, and prints `{"ok": true}` (or the
error) on stdout. The operator path is the one the HTTP API uses; it needs no console here, so the
test can SIGKILL a gateway whose alarms a person has acknowledged and shelved.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
from typing import Any

from config.site import load_site
from gateway.logs import setup_logging
from gateway.service import Gateway

OPS = {"acknowledge", "shelve", "unshelve", "remove_from_service", "return_to_service"}


async def main(path: str) -> int:
    setup_logging("info", "text")
    gateway = Gateway(load_site(path))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    def call(line: str) -> None:
        try:
            command: dict[str, Any] = json.loads(line)
            if command.get("op") not in OPS:
                raise ValueError(f"unknown op {command.get('op')!r}")
            getattr(gateway, command["op"])(*command.get("args", []))
            answer: dict[str, Any] = {"ok": True}
        except Exception as exc:  # the test wants to see any refusal
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(call, line)

    threading.Thread(target=read_stdin, name="child.stdin", daemon=True).start()
    await gateway.run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(sys.argv[1])))
