"""systemd's readiness and watchdog protocol, spoken directly: one datagram to `$NOTIFY_SOCKET`.

`Type=notify` lets systemd know when the gateway is up (`READY=1`) and stopping (`STOPPING=1`);
`WatchdogSec=` restarts it when it stops saying `WATCHDOG=1`. The notifier says it only while the
gateway is not *unhealthy* (polling or publishing stalled, see `gateway.health`): a stuck gateway is
restarted by systemd, a degraded one (broker away, disk full) is not, since a restart cannot help.

No dependency: the protocol is a UNIX datagram of `KEY=VALUE` lines; an address starting with `@`
is in the abstract namespace.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

from gateway.components import Capabilities, Component, ComponentContext

log = logging.getLogger("fgw.systemd")


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `message` to systemd; False when not run by systemd (no `NOTIFY_SOCKET`) or it failed."""
    address = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("systemd notify failed: %s", exc)
        return False
    return True


def watchdog_seconds(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog period systemd asked for (`WATCHDOG_USEC`, for this process), or None."""
    env = env if env is not None else os.environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


class SystemdNotifier(Component):
    """READY=1 when running, WATCHDOG=1 at half the watchdog period while not unhealthy, STOPPING=1.

    Args:
        context: whose `status.health()` decides whether to feed the watchdog.
        env: the environment (injectable for tests).
    """

    name = "systemd"

    def __init__(self, context: ComponentContext, env: Mapping[str, str] | None = None) -> None:
        self.site = context.site
        self.status = context.status
        self.env = dict(env if env is not None else os.environ)
        self.watchdog = watchdog_seconds(self.env)
        self.starved = False

    async def run(self) -> None:
        notify(f"READY=1\nSTATUS=polling {len(self.site.devices)} devices", self.env)
        if self.watchdog is None:
            return
        while True:
            await asyncio.sleep(self.watchdog / 2)
            health = self.status.health()
            if health["status"] == "unhealthy":
                if not self.starved:
                    bad = [k for k, c in health["checks"].items() if c["status"] == "unhealthy"]
                    log.error("unhealthy (%s): no longer feeding the watchdog", ", ".join(bad))
                    notify(f"STATUS=unhealthy: {', '.join(bad)}", self.env)
                self.starved = True
                continue
            if self.starved:
                log.info("healthy again: feeding the watchdog")
                self.starved = False
            notify(f"WATCHDOG=1\nSTATUS={health['status']}", self.env)

    async def close(self) -> None:
        notify("STOPPING=1", self.env)


def build(context: ComponentContext, capabilities: Capabilities) -> Component | None:
    """The `gateway.registry` factory: only when started by systemd with `Type=notify`."""
    return SystemdNotifier(context) if os.environ.get("NOTIFY_SOCKET") else None
