"""`fgw demo`: the example site, its simulators, a private Mosquitto and the gateway, in one command.

Everything runs on loopback with ports picked free at start, so the demo works beside a broker or
another demo already running. The demo's own site file is written to the work folder, so the commands
it prints (`fgw inject …`, `mosquitto_sub …`) can be copied as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

from config.site import load_site
from gateway.accounts import Accounts
from gateway.commands.failures import CommandFailure
from gateway.service import Gateway

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "riverside.yaml"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console_port() -> int:
    """The console's usual 8080 when it is free, any free port otherwise."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", 8080))
        except OSError:
            return free_port()
    return 8080


DEMO_USER = "demo"


def demo_login(accounts: Accounts, workdir: Path) -> tuple[str, str]:
    """The demo's engineer login, made on the first start and kept (0600) in the work folder."""
    saved = workdir / "demo-login.txt"
    if accounts.get_user(DEMO_USER) is not None and saved.exists():
        return DEMO_USER, saved.read_text(encoding="utf-8").strip()
    password = secrets.token_urlsafe(9)
    if accounts.get_user(DEMO_USER) is None:
        accounts.add_user(DEMO_USER, "engineer", password, by="fgw demo")
    else:
        accounts.set_password(DEMO_USER, password, by="fgw demo")
    fd = os.open(saved, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return DEMO_USER, password


def write_demo_site(source: Path, workdir: Path, mqtt_port: int) -> Path:
    """Copy `source` into `workdir` with loopback ports that are free now and storage inside it."""
    yaml = YAML(typ="rt")
    data = yaml.load(source.read_text(encoding="utf-8"))
    data["mqtt"]["host"] = "127.0.0.1"
    data["mqtt"]["port"] = mqtt_port
    data.setdefault("storage", {})["path"] = "./state"
    data["console"] = {"listen": f"127.0.0.1:{console_port()}"}
    for bus in data.get("modbus", []):
        if bus.get("transport") == "tcp":
            bus["host"] = "127.0.0.1"
            bus["port"] = free_port()
    target = workdir / "site.yaml"
    with target.open("w", encoding="utf-8") as out:
        out.write(f"{DEMO_MARK} from {source}; ports were free when it started.\n")
        yaml.dump(data, out)
    return target


def start_broker(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise SystemExit("fgw demo: the mosquitto binary is missing (apt-get install mosquitto)")
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        # Nagle off on the broker's side too: an alarm that follows another message to the same
        # subscriber within a round trip would otherwise wait for a delayed ACK
        "set_tcp_nodelay true\n" + ("user root\n" if os.geteuid() == 0 else "")
    )
    log = (workdir / "mosquitto.log").open("ab")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
    for _ in range(200):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
            return process
        if process.poll() is not None:
            break
        import time

        time.sleep(0.025)
    raise SystemExit(f"fgw demo: mosquitto did not start (see {workdir / 'mosquitto.log'})")


DEMO_MARK = "# Written by `fgw demo`"
"""The first line of the site files the demo writes: what `--fresh` may clear."""


def clear_demo_state(workdir: Path) -> list[Path]:
    """Remove what earlier demos in `workdir` stored (alarms, tickets, history, the login).

    Only a folder the demo wrote is touched: its `state` folder and `demo-login.txt`, never the
    folder itself.

    Raises:
        CommandFailure: `workdir` has a site file the demo did not write.
    """
    site = workdir / "site.yaml"
    if site.exists() and not site.read_text(encoding="utf-8").startswith(DEMO_MARK):
        raise CommandFailure(
            f"--fresh: {site} was not written by `fgw demo`; not clearing {workdir} "
            "(choose another --workdir)"
        )
    removed = []
    for path in (workdir / "state", workdir / "demo-login.txt"):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def prepare_demo(
    workdir: Path, site_file: str | None, *, fresh: bool = False
) -> tuple[Path, int, subprocess.Popen[bytes]]:
    """Write the demo's site file and start its broker; returns (site file, port, broker).

    Args:
        fresh: first clear what earlier demos stored there (`clear_demo_state`).
    """
    workdir = workdir.resolve()
    if fresh and workdir.exists():
        for path in clear_demo_state(workdir):
            print(f"fgw demo: fresh start: removed {path}", flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    mqtt_port = free_port()
    site_path = write_demo_site(Path(site_file) if site_file else EXAMPLE, workdir, mqtt_port)
    return site_path, mqtt_port, start_broker(workdir, mqtt_port)


async def run_demo(workdir: Path, site_file: str | None = None, *, fresh: bool = False) -> int:
    """Run the demo until Ctrl-C or SIGTERM (`fresh`: without what earlier demos stored)."""
    from simulators.runner import SiteSimulator

    site_path, mqtt_port, broker = await asyncio.to_thread(
        functools.partial(prepare_demo, workdir, site_file, fresh=fresh)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        site = load_site(site_path)
        async with SiteSimulator(site, "127.0.0.1", mqtt_port):
            gateway = Gateway(site)
            console = gateway.capabilities.console
            assert console is not None  # always built: it keeps the accounts
            login = await asyncio.to_thread(demo_login, console.accounts, site_path.parent)
            _print_banner(site_path, site.topic_prefix, mqtt_port)
            _print_console(site.file.console.listen, login)
            await gateway.run(stop)
    finally:
        broker.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            broker.wait(timeout=5)
    return 0


def _print_console(listen: str, login: tuple[str, str]) -> None:
    print(
        f"""Open the console (alarms live, tickets, devices, trends; 中文 / English):
  http://{listen}/
  login: {login[0]}   password: {login[1]}   (engineer; add users with `fgw user add`)
""",
        flush=True,
    )


def _print_banner(site_path: Path, prefix: str, mqtt_port: int) -> None:
    beside = Path(sys.executable).parent / "fgw"  # the venv's script, when not on PATH
    fgw = "fgw" if shutil.which("fgw") else str(beside) if beside.exists() else "fgw"
    print(
        f"""
Facility Gateway demo is running (Ctrl-C to stop).
  site file : {site_path}
  broker    : mqtt://127.0.0.1:{mqtt_port}  (a private Mosquitto)

Watch the alarms:
  mosquitto_sub -h 127.0.0.1 -p {mqtt_port} -v -t '{prefix}/alarms/#' -t '{prefix}/events'

Then, in another terminal, inject a fault and clear it:
  {fgw} inject {site_path} fire-1 fire --zone 3
  {fgw} inject {site_path} fire-1 clear
  {fgw} inject {site_path} pump-1 dry_run
  {fgw} inject {site_path} lift-2 entrapment
  {fgw} inject {site_path} meter-1 offline
""",
        flush=True,
    )
