"""Polling against the wire's own ceiling: serial lines and one-connection converters.

    python -m bench.wire [--units 10] [--seconds 20] [--repeat 2] [--warmup 5] [--only line|tcp]
                         [--bauds 9600 19200]

`fgw sim` serves the units in its own process, behind a simulated line (`simulators.converter`):
one request at a time, each holding the line for its frames at 11 bits a character, the unit's
turnaround and two 3.5-character gaps (`drivers.modbus.budget.transaction_time`). The gateway's own
driver (`ModbusBusDriver`, its scheduler included) polls every unit at 50 ms, more than the line can
carry, so the line is the limit; polls answered per second are counted once every unit has answered.

1. **Lines.** `rtu` (a pseudo-terminal pair made by socat) and `rtu-over-tcp` (a transparent
   converter), at 9600 and 19200 baud, with `--units` live units reading 10 registers each, then
   with one more unit that is dead (configured, never answering: it costs the line its timeout on
   each of its backed-off attempts). Goal: >= 90 % of the line's capacity (1 / transaction time)
   with every unit live, >= 80 % with one dead. Counting starts `--warmup` seconds after every
   live unit has answered (the dead unit's first, closer attempts are the back-off's ramp).
2. **Modbus TCP through a one-connection converter** (115200 baud on its line): the gateway's
   polls/s against a bare pymodbus client making the same requests, one after the other, on one
   connection to the same converter. Goal: >= 90 % of the bare client.

Runs alternate and repeat (`--repeat`); every figure is printed, with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from bench.support import free_port, header, load_average, median, simulators
from config.site import Site, load_site
from drivers.modbus.budget import transaction_time
from drivers.modbus.poller import ModbusBusDriver
from ground.model import DeviceStatus, Quality, Reading

REGISTERS = 10
TURNAROUND = 0.003
TIMEOUT = 0.2
POLL = "50ms"


class Counter:
    """A ReadingSink counting polls answered with good readings."""

    def __init__(self, live: int) -> None:
        self.polls = 0
        self.seen: set[str] = set()
        self.live = live
        self.all_seen = asyncio.Event()

    def readings(self, batch: Sequence[Reading]) -> None:
        if batch and batch[0].quality is Quality.GOOD:
            self.polls += 1
            self.seen.add(batch[0].device)
            if len(self.seen) >= self.live:
                self.all_seen.set()

    def device_status(self, status: DeviceStatus) -> None:
        pass


def site_yaml(transport: str, where: str, baud: int, live: int, dead: int) -> str:
    points = ", ".join(
        f"r{a}: {{register: holding, address: {a}, type: uint16}}" for a in range(REGISTERS)
    )
    if transport == "rtu":
        bus = f"transport: rtu, port: {where}"
    else:
        bus = f"transport: {transport}, host: 127.0.0.1, port: {where}"
    converter = "converter: true, " if transport == "tcp" else ""
    lines = [
        "site: {id: wire, timezone: Asia/Shanghai}",
        "storage: {path: ./state}",
        "mqtt: {host: 127.0.0.1, port: 1883}",
        "modbus:",
        f"  - {{id: line, {bus}, baudrate: {baud}, timeout: {TIMEOUT}s,",
        f"     sim: {{{converter}turnaround: {TURNAROUND}s, dead_timeout: {TIMEOUT}s}}}}",
        "devices:",
    ]
    for unit in range(1, live + dead + 1):
        # a dead unit is one the simulator does not serve: a unit id the line has no device for
        lines.append(
            f"  - {{id: u{unit}, modbus: {{bus: line, unit: {unit}}}, poll: {POLL},"
            f" points: {{{points}}}}}"
        )
    return "\n".join(lines) + "\n"


def capacity(baud: int) -> float:
    """Polls/s the line can carry: one request of 8 bytes, one answer of 5 + 2 × REGISTERS."""
    return 1.0 / transaction_time(8, 5 + 2 * REGISTERS, baud, TURNAROUND)


async def gateway_polls(site: Site, seconds: float, live: int, warmup: float = 0.0) -> float:
    """Polls/s the gateway's driver gets answered, from `warmup` seconds after every live unit
    has answered."""
    bus = next(iter(site.buses.values()))
    counter = Counter(live)
    async with ModbusBusDriver(bus, list(site.devices.values()), counter):
        await asyncio.wait_for(counter.all_seen.wait(), 30)
        await asyncio.sleep(warmup)
        counter.polls, start = 0, time.perf_counter()
        await asyncio.sleep(seconds)
        return counter.polls / (time.perf_counter() - start)


async def bare_polls(host: str, port: int, units: int, seconds: float) -> float:
    """Polls/s of a bare pymodbus client making the same requests in turn on one connection.

    Like the gateway's count, only answered polls count; a request that times out (a loaded
    machine) is skipped, and the connection is made again if pymodbus closed it.
    """
    client = AsyncModbusTcpClient(host, port=port, timeout=TIMEOUT, retries=0, reconnect_delay=0)

    async def ask(unit: int) -> bool:
        if not client.connected and not await client.connect():
            return False
        try:
            response = await client.read_holding_registers(0, count=REGISTERS, device_id=unit)
        except ModbusException:
            return False
        return not response.isError()

    for _ in range(50):  # the converter frees the previous run's connection when it sees it close
        if await ask(1):
            break
        client.close()
        await asyncio.sleep(0.1)
    try:
        polls, deadline = 0, time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < deadline:
            for unit in range(1, units + 1):
                polls += await ask(unit)
        return polls / (time.perf_counter() - start)
    finally:
        client.close()


def served_site(folder: Path, text: str, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def wait_for_path(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)


def run_line(
    folder: Path, transport: str, baud: int, units: int, dead: int, seconds: float, warmup: float
) -> float:
    """One line run: the simulator in its own process, the gateway here; polls/s achieved."""
    port = free_port()
    # a new path each run: the pty pair of the previous run may not be gone yet
    where = str(folder / f"tty-{baud}-{dead}-{port}") if transport == "rtu" else str(port)
    gateway_text = site_yaml(transport, where, baud, units, dead)
    sim_text = site_yaml(transport, where, baud, units, 0)
    sim_path = served_site(folder, sim_text, f"sim-{transport}-{baud}-{dead}")
    ports = [] if transport == "rtu" else [port]
    with simulators(sim_path, ports):
        if transport == "rtu":
            wait_for_path(Path(where))
        site = load_site(folder / "gateway.yaml", gateway_text)
        return asyncio.run(gateway_polls(site, seconds, units, warmup))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wire", description=__doc__)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", choices=["line", "tcp"])
    parser.add_argument("--bauds", type=int, nargs="+", default=[9600, 19200])
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds before counting, once all answered"
    )
    args = parser.parse_args(argv)
    header("wire")
    with tempfile.TemporaryDirectory(prefix="fgw-wire-") as tmp:
        folder = Path(tmp)
        if args.only in (None, "line"):
            print(
                f"lines: {args.units} units, {REGISTERS} registers a poll, polled at {POLL},"
                f" {args.seconds:g} s counted after {args.warmup:g} s"
            )
            for baud in args.bauds:
                for dead in (0, 1):
                    for transport in ("rtu", "rtu-over-tcp"):
                        rates = [
                            run_line(
                                folder,
                                transport,
                                baud,
                                args.units,
                                dead,
                                args.seconds,
                                args.warmup,
                            )
                            for _ in range(args.repeat)
                        ]
                        ceiling = capacity(baud)
                        ratios = ", ".join(f"{r / ceiling:.3f}" for r in rates)
                        goal = 0.8 if dead else 0.9
                        print(
                            f"  {transport:12} {baud:5} baud, {dead} dead: "
                            f"{median(rates):6.2f} polls/s of {ceiling:6.2f} -> "
                            f"{median(rates) / ceiling:.3f} (runs {ratios}; goal >= {goal}) "
                            f"load {load_average()}"
                        )
        if args.only in (None, "tcp"):
            port = free_port()
            text = site_yaml("tcp", str(port), 115200, args.units, 0)
            sim_path = served_site(folder, text, "sim-tcp")
            with simulators(sim_path, [port]):
                site = load_site(folder / "gateway.yaml", text)
                gateway_rates, bare_rates = [], []
                for _ in range(args.repeat):
                    gateway_rates.append(asyncio.run(gateway_polls(site, args.seconds, args.units)))
                    bare_rates.append(
                        asyncio.run(bare_polls("127.0.0.1", port, args.units, args.seconds))
                    )
                ratio = median(gateway_rates) / median(bare_rates)
                print(
                    f"Modbus TCP, one-connection converter at 115200 baud, {args.units} units: "
                    f"gateway {median(gateway_rates):.1f} polls/s, bare pymodbus "
                    f"{median(bare_rates):.1f} polls/s -> {ratio:.3f} (goal >= 0.9); runs "
                    + ", ".join(
                        f"{g:.1f}/{b:.1f}" for g, b in zip(gateway_rates, bare_rates, strict=True)
                    )
                    + f"; ceiling {capacity(115200):.1f}; load {load_average()}"
                )


if __name__ == "__main__":
    main()
