"""`fgw` — the command line of Facility Gateway (PRODUCT §8).

Each subcommand is a small function; heavy imports happen inside them so that `fgw check` stays
quick on a small edge box.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from config.errors import ConfigIssue, SiteError
from gateway import __version__
from gateway.commands import COMMAND_MODULES, SITE_HELP
from gateway.commands.failures import describe

if TYPE_CHECKING:
    from config.site import Site


LEVELS = ["debug", "info", "warning", "error"]


def _load(path: str) -> Site:
    """Load a site or exit 1 printing every issue (never a traceback)."""
    from config.site import load_site

    try:
        site = load_site(path)
    except SiteError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        raise SystemExit(1) from None
    return site


def cmd_check(args: argparse.Namespace) -> int:
    site = _load(args.site)
    for warning in site.warnings:
        print(warning, file=sys.stderr)
    for warning in _line_budget_warnings(site):
        print(warning, file=sys.stderr)
    rules = sum(len(d.rules) for d in site.devices.values())
    points = sum(len(d.points) for d in site.devices.values())
    print(
        f"{args.site}: ok — site {site.id}: {len(site.devices)} devices, {points} points, "
        f"{rules} rules, {len(site.buses)} Modbus buses"
    )
    topics = [site.device_topic(d) for d in site.devices.values() if d.spec.mqtt is not None]
    if topics:  # where the MQTT devices must publish (mqtt.device_base; docs/mqtt.md)
        print(f"  MQTT devices read at: {', '.join(t + '/…' for t in topics)}")
    return 0


def _line_budget_warnings(site: Site) -> list[ConfigIssue]:
    """Buses whose configured polling cannot fit their serial line (`drivers.modbus.budget`)."""
    from config.yamlsource import load_yaml
    from drivers.modbus.budget import budget_warnings

    found = budget_warnings(site)
    if not found:
        return []
    doc = load_yaml(site.path)
    return [doc.issue(loc, message, warning=True) for loc, message in found]


def cmd_run(args: argparse.Namespace) -> int:
    """`fgw run`, with the cyclic garbage collector off for the synchronous start-up.

    Start-up (imports, the site's models, every device's poller and rule) builds hundreds of
    thousands of long-lived objects and next to no cyclic garbage, so each collection that the
    allocations trigger scans a growing heap for nothing: about a sixth of the CPU time before the
    first poll at 1,000 devices. The collector is back on from the event loop's first turn after
    the gateway is built, before any poll is answered, so no garbage of the running service waits.
    """
    gc.disable()
    try:
        from gateway.logs import setup_logging
        from gateway.service import run_service

        setup_logging(args.log_level, args.log_format)
        site = _load(args.site)
    except BaseException:
        gc.enable()
        raise

    async def serve() -> int:
        asyncio.get_running_loop().call_soon(gc.enable)  # runs once run_service first awaits
        return await run_service(site)

    try:
        return asyncio.run(serve())
    finally:
        gc.enable()


def cmd_poll(args: argparse.Namespace) -> int:
    from gateway.logs import setup_logging
    from gateway.poll import poll_site_once

    setup_logging("warning", "text")
    site = _load(args.site)
    if not args.once:
        print(
            "fgw poll: only --once is supported: use `fgw run` to poll continuously",
            file=sys.stderr,
        )
        return 2
    devices = args.device or None
    unknown = [d for d in devices or [] if d not in site.devices]
    if unknown:
        print(f"fgw poll: unknown device(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    readings = asyncio.run(poll_site_once(site, devices, mqtt_wait=args.mqtt_wait))
    for reading in readings:
        print(json.dumps(reading, ensure_ascii=False))
    heard = {r["device"] for r in readings if r["quality"] != "stale"}
    silent = sorted({r["device"] for r in readings} - heard)
    if silent:
        print(f"fgw poll: no answer from {', '.join(silent)}", file=sys.stderr)
    return 1 if silent else 0


def cmd_sim(args: argparse.Namespace) -> int:
    from gateway.logs import setup_logging
    from simulators.runner import run_until_cancelled

    setup_logging(args.log_level, "text")
    site = _load(args.site)
    try:
        asyncio.run(run_until_cancelled(site, seed=args.seed))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_inject(args: argparse.Namespace) -> int:
    from simulators.control import send_inject

    site = _load(args.site)
    if args.device not in site.devices:
        print(f"fgw inject: unknown device {args.device!r}", file=sys.stderr)
        return 2
    command: dict[str, object]
    if args.fault == "set":
        if not args.values:
            print("fgw inject: set needs POINT=VALUE", file=sys.stderr)
            return 2
        values: dict[str, object] = {}
        for item in args.values:
            point, sep, raw = item.partition("=")
            if not sep or point not in site.devices[args.device].points:
                print(
                    f"fgw inject: {item!r} is not POINT=VALUE of a point of {args.device}",
                    file=sys.stderr,
                )
                return 2
            values[point] = _parse_value(raw)
        command = {"set": values}
    else:
        if args.values:
            print("fgw inject: extra arguments after the fault name", file=sys.stderr)
            return 2
        command = {"fault": args.fault}
        if args.zone is not None:
            command["zone"] = args.zone
    mqtt = site.file.mqtt
    try:
        result = asyncio.run(send_inject(mqtt.host, mqtt.port, site.id, args.device, command))
    except TimeoutError as exc:
        print(
            f"fgw inject: no simulator answered ({exc or 'timeout'}): is `fgw sim` running?",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        if describe(exc) is None:
            raise
        print(
            f"fgw inject: cannot reach the MQTT broker at {mqtt.host}:{mqtt.port} ({exc}): "
            f"is `fgw demo` or Mosquitto running? check mqtt: in {args.site}",
            file=sys.stderr,
        )
        return 1
    if not result.get("ok"):
        print(f"fgw inject: {result.get('error', 'refused')}", file=sys.stderr)
        return 1
    print(f"{args.device}: {args.fault} {' '.join(args.values)}".rstrip())
    return 0


def _parse_value(raw: str) -> object:
    """`1999.5` -> float, `12` -> int, `true` -> True; anything else stays text."""
    lowered = raw.strip().lower()
    if lowered in ("true", "on"):
        return True
    if lowered in ("false", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo
    from gateway.logs import setup_logging

    setup_logging(args.log_level, "text")
    try:
        return asyncio.run(run_demo(Path(args.workdir), site_file=args.site, fresh=args.fresh))
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fgw", description="Facility Gateway: building equipment to alarms and tickets."
    )
    parser.add_argument("--version", action="version", version=f"fgw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the gateway service for a site (headless)")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("--log-level", default="info", choices=LEVELS, help="least severe logged (info)")
    p.add_argument(
        "--log-format",
        default="auto",
        choices=["auto", "json", "text"],
        help="log lines on stderr: JSON (for journald or a collector) or text; auto: text on a "
        "terminal, JSON otherwise",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check", help="validate a site file; exit 1 with one line per error")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("poll", help="read every (or one) device once; one JSON line per reading")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("--once", action="store_true", help="read once and exit (required)")
    p.add_argument("--device", action="append", help="only this device (repeatable)")
    p.add_argument("--mqtt-wait", type=float, default=3.0, help="seconds to wait for MQTT devices")
    p.set_defaults(func=cmd_poll)

    p = sub.add_parser("sim", help="run the equipment simulators for a site's devices")
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument(
        "--seed", type=int, default=None, help="random seed: the same noise and events every run"
    )
    p.add_argument("--log-level", default="info", choices=LEVELS, help="least severe logged (info)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser(
        "inject", help="drive a running simulator into a fault, clear it, or set a value"
    )
    p.add_argument("site", metavar="SITE", help=SITE_HELP)
    p.add_argument("device", help="the simulated device's id in the site file, e.g. pump-1")
    p.add_argument("fault", help="a fault name, `clear`, or `set` followed by POINT=VALUE")
    p.add_argument("values", nargs="*", help="POINT=VALUE for `set`")
    p.add_argument("--zone", type=int, help="fire zone (fire panel `fire`)")
    p.set_defaults(func=cmd_inject)

    p = sub.add_parser("demo", help="simulators + gateway on the bundled example site")
    p.add_argument("--workdir", default="var/demo", help="where the demo keeps its files")
    p.add_argument(
        "--site", default=None, help="site file to demo (default: examples/riverside.yaml)"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start clean: first remove the alarms, tickets, history and login that earlier "
        "demos kept in the work folder",
    )
    p.add_argument(
        "--log-level", default="warning", choices=LEVELS, help="least severe logged (warning)"
    )
    p.set_defaults(func=cmd_demo)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Each subcommand's one-line help also heads its own `--help` page."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {c.dest: c.help for c in action._choices_actions}
            for name, child in action.choices.items():
                if child.description is None and helps.get(name):
                    child.description = helps[name]
                _describe(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; an expected failure is one line on stderr and exit 1, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        line = describe(exc)
        if line is None:
            raise  # not an expected failure: a bug, and its traceback is the report
        print(f"fgw {_command_name(args)}: {line}", file=sys.stderr)
        return 1


def _command_name(args: argparse.Namespace) -> str:
    """`report maintenance`, `tickets list`, `run`: the words the user typed to choose it."""
    for key in (args.command, f"{args.command}_command"):  # a group's `dest` (gateway.commands)
        word = getattr(args, key, None)
        if isinstance(word, str) and word != args.command:
            return f"{args.command} {word}"
    return str(args.command)


if __name__ == "__main__":
    raise SystemExit(main())
