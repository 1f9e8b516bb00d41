"""Modbus polling against the wire library's ceiling: the gateway's poll path vs bare pymodbus.

    python -m bench.poll [--devices 8] [--seconds 3] [--repeat 3]

1. **Requests/s.** `fgw sim` serves N simulated devices (the built-in templates, one TCP server for
   the bus, in its own process). Each device is polled back to back, as fast as the wire allows,
   all devices at once: first through the gateway's own poll path (`ModbusBusDriver`: the read
   plan, the bus's `Endpoint` with as many connections as devices, decoding, health, delivery of
   `Reading` batches to a sink), then
   by a bare `AsyncModbusTcpClient` loop making the same requests (same blocks, same units) over
   the same number of connections. Runs alternate `--repeat` times; medians are printed.
2. **Merging.** A device of 125 one-register points (a bare pymodbus server for it, in its own
   process): polled by the gateway with its merged plan (one request) and with `no_merge` (one
   request per point), over one connection; registers/s of each, and requests per poll of the
   template site both ways.
3. **Planning.** Time for `plan_reads` on 10,000 points (and 100,000, to show it grows as O(N);
   `--plan-points` changes the first).

The scheduler's waits are left out on purpose: the poll grid (`poll: 1s`) is what a site asks for;
this measures what one poll costs against what the wire costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pymodbus.client import AsyncModbusTcpClient

from bench.sites import modbus_site_yaml
from bench.support import broker, free_port, header, median, simulators, stop, wait_for_port
from config.models import ModbusPoint, Workarounds
from config.site import Device, Site, load_site
from drivers.modbus.plan import plan_reads
from drivers.modbus.poller import ModbusBusDriver
from ground.model import DeviceStatus, Reading

MERGE_POINTS = 125


class Sink:
    """A ReadingSink that counts the readings delivered."""

    def __init__(self) -> None:
        self.count = 0

    def readings(self, batch: Sequence[Reading]) -> None:
        self.count += len(batch)

    def device_status(self, status: DeviceStatus) -> None:
        pass


async def gateway_rate(site: Site, devices: Sequence[Device], seconds: float) -> dict[str, float]:
    """Requests/s, registers/s and readings/s of the gateway's poll path, devices in parallel."""
    bus = next(iter(site.buses.values()))
    sink = Sink()
    driver = ModbusBusDriver(bus, devices, sink)
    driver._open_links()  # the driver's own links; its scheduler is what we leave out
    requests = registers = 0
    try:
        # connect (and warm up) before the clock starts
        for poller in driver.pollers.values():
            assert await driver._poll_and_report(poller, driver._links[poller.id])
        sink.count = 0
        deadline = time.perf_counter() + seconds

        async def loop(device_id: str) -> None:
            nonlocal requests, registers
            poller, link = driver.pollers[device_id], driver._links[device_id]
            per_poll = len(poller.blocks), sum(b.count for b in poller.blocks)
            while time.perf_counter() < deadline:
                if not await driver._poll_and_report(poller, link):
                    raise RuntimeError(f"{device_id} did not answer")
                requests += per_poll[0]
                registers += per_poll[1]

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for device_id in driver.pollers:
                tg.create_task(loop(device_id), name=f"bench.poll[{device_id}]")
        elapsed = time.perf_counter() - start
    finally:
        driver._close_links()
    return {
        "requests": requests / elapsed,
        "registers": registers / elapsed,
        "readings": sink.count / elapsed,
    }


async def bare_rate(site: Site, devices: Sequence[Device], seconds: float) -> dict[str, float]:
    """The same requests from bare pymodbus clients, one connection per device."""
    bus = next(iter(site.buses.values()))
    plans = {d.id: plan_reads(_modbus_points(d), d.spec.workarounds, bus.max_gap) for d in devices}
    units = {d.id: d.spec.modbus.unit for d in devices if d.spec.modbus is not None}
    # Same timeout as the gateway's, no retries, no reconnect task, so that only what the
    # gateway adds around a request differs.
    clients = {
        d.id: AsyncModbusTcpClient(
            str(bus.host),
            port=int(bus.port or 502),
            timeout=d.spec.timeout if d.spec.timeout is not None else bus.timeout,
            retries=0,
            reconnect_delay=0,
        )
        for d in devices
    }
    requests = registers = 0
    try:
        for client in clients.values():
            assert await client.connect()
        deadline = time.perf_counter() + seconds

        async def loop(device_id: str) -> None:
            nonlocal requests, registers
            client, unit = clients[device_id], units[device_id]
            calls = [
                (
                    {
                        "holding": client.read_holding_registers,
                        "input": client.read_input_registers,
                        "coil": client.read_coils,
                        "discrete": client.read_discrete_inputs,
                    }[b.table],
                    b.address,
                    b.count,
                )
                for b in plans[device_id]
            ]
            while time.perf_counter() < deadline:
                for call, address, count in calls:
                    response = await call(address, count=count, device_id=unit)
                    if response.isError():
                        raise RuntimeError(f"{device_id}: {response}")
                    requests += 1
                    registers += count

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for device_id in clients:
                tg.create_task(loop(device_id), name=f"bench.bare[{device_id}]")
        elapsed = time.perf_counter() - start
    finally:
        for client in clients.values():
            client.close()
    return {"requests": requests / elapsed, "registers": registers / elapsed}


def _modbus_points(device: Device) -> dict[str, ModbusPoint]:
    return {n: p for n, p in device.points.items() if isinstance(p, ModbusPoint)}


def merge_site_yaml(port: int) -> str:
    """Two views of one device of 125 one-register points: merged, and one request per point."""
    points = ", ".join(
        f"r{a}: {{register: holding, address: {a}, type: uint16}}" for a in range(MERGE_POINTS)
    )
    return (
        "site: {id: merge, timezone: Asia/Shanghai}\nstorage: {path: ./state}\n"
        "mqtt: {host: 127.0.0.1, port: 1883}\n"
        f"modbus:\n  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {port}, timeout: 1s}}\n"
        "devices:\n"
        f"  - {{id: merged, modbus: {{bus: bus, unit: 1}}, points: {{{points}}}}}\n"
        f"  - {{id: single, modbus: {{bus: bus, unit: 2}}, points: {{{points}}},\n"
        "     workarounds: {no_merge: true}}\n"
    )


def serve_registers(port: int) -> None:
    """`python -m bench.poll --serve PORT`: a bare pymodbus server, units 1 and 2, 125 registers."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    async def main() -> None:
        blocks = [
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            [SimData(0, count=1, values=False, datatype=DataType.BITS)],
            [SimData(0, count=MERGE_POINTS, values=7, datatype=DataType.REGISTERS)],
            [SimData(0, count=1, values=0, datatype=DataType.REGISTERS)],
        ]
        devices = [
            SimDevice(id=unit, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]))
            for unit in (1, 2)
        ]
        server = ModbusTcpServer(devices, address=("127.0.0.1", port))
        await server.serve_forever()

    asyncio.run(main())


def plan_seconds(points: int) -> float:
    """Best of 3: `plan_reads` over `points` points (4 tables, runs of 10 adjacent, 5-address gaps)."""
    table = {0: "holding", 1: "input", 2: "coil", 3: "discrete"}
    spec = {
        f"p{i}": ModbusPoint.model_validate(
            {"register": table[i % 4], "address": (i // 4) * 2 + (i // 40) * 5, "type": "uint16"}
            if i % 4 < 2
            else {"register": table[i % 4], "address": (i // 4) * 2 + (i // 40) * 5, "type": "bool"}
        )
        for i in range(points)
    }
    best = float("inf")
    for _ in range(3):
        gc.collect()
        gc.disable()  # as timeit does: a collection of unrelated objects is not the plan's cost
        try:
            start = time.perf_counter()
            plan_reads(spec, Workarounds(), 10)
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best


@contextlib.contextmanager
def register_server() -> Iterator[int]:
    """The bare register server (`--serve`) in its own process; yields its port."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.poll", "--serve", str(port)])
    try:
        wait_for_port(port)
        yield port
    finally:
        stop(server, 5)


async def measure(
    site: Site, merge_site: Site, seconds: float, repeat: int, plan_points: int
) -> None:
    polled = list(site.devices.values())
    devices = len(polled)
    gateway, bare = [], []
    for _ in range(repeat):
        gateway.append(await gateway_rate(site, polled, seconds))
        bare.append(await bare_rate(site, polled, seconds))
    g_req = median([g["requests"] for g in gateway])
    b_req = median([b["requests"] for b in bare])
    print(f"devices {devices} (one connection each, one fgw sim server), {seconds:g} s × {repeat}")
    print(f"  gateway poll path  : {g_req:>9,.0f} requests/s "
          f"{median([g['registers'] for g in gateway]):>10,.0f} registers/s "
          f"{median([g['readings'] for g in gateway]):>9,.0f} readings/s")  # fmt: skip
    print(f"  bare pymodbus loop : {b_req:>9,.0f} requests/s "
          f"{median([b['registers'] for b in bare]):>10,.0f} registers/s")  # fmt: skip
    print(f"  ratio gateway/bare : {g_req / b_req:.2f}   (goal >= 0.90)")

    merged_plans = sum(len(plan_reads(_modbus_points(d), d.spec.workarounds, 10)) for d in polled)
    single_plans = sum(
        len(plan_reads(_modbus_points(d), Workarounds(no_merge=True), 10)) for d in polled
    )
    print(f"  requests per cycle : {merged_plans} merged vs {single_plans} one per point "
          f"({single_plans / merged_plans:.1f}x fewer)")  # fmt: skip

    merged, single = merge_site.devices["merged"], merge_site.devices["single"]
    m_runs, s_runs, bm_runs, bs_runs = [], [], [], []
    for _ in range(repeat):
        m_runs.append((await gateway_rate(merge_site, [merged], seconds))["registers"])
        s_runs.append((await gateway_rate(merge_site, [single], seconds))["registers"])
        bm_runs.append((await bare_rate(merge_site, [merged], seconds))["registers"])
        bs_runs.append((await bare_rate(merge_site, [single], seconds))["registers"])
    m, s, bm, bs = median(m_runs), median(s_runs), median(bm_runs), median(bs_runs)
    print(f"{MERGE_POINTS} one-register points, one connection: registers/s")
    print(f"  {'':24} {'merged (1 req/poll)':>20} {'point by point':>15} {'ratio':>6}")
    print(f"  {'gateway poll path':24} {m:>20,.0f} {s:>15,.0f} {m / s:>5.0f}x  (goal >= 50x)")
    print(f"  {'bare pymodbus (wire)':24} {bm:>20,.0f} {bs:>15,.0f} {bm / bs:>5.0f}x")

    small, large = plan_seconds(plan_points), plan_seconds(10 * plan_points)
    print(f"plan_reads: {plan_points:,} points {1000 * small:.1f} ms (goal for 10,000: < 50 ms); "
          f"{10 * plan_points:,} points {1000 * large:.1f} ms "
          f"({large / small:.1f}x for 10x the points)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plan-points", type=int, default=10_000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_registers(args.serve)
        return
    header("poll")
    with tempfile.TemporaryDirectory(prefix="fgw-bench-poll-") as tmp:
        folder = Path(tmp)
        modbus_port = free_port()
        with broker(folder) as mqtt_port, register_server() as register_port:
            path = folder / "site.yaml"
            path.write_text(
                modbus_site_yaml(
                    args.devices,
                    mqtt_port=mqtt_port,
                    modbus_port=modbus_port,
                    max_connections=args.devices,  # as many as the bare clients open
                )
            )
            site = load_site(path)
            merge_site = load_site(folder / "merge.yaml", merge_site_yaml(register_port))
            with simulators(path, [modbus_port]):
                asyncio.run(measure(site, merge_site, args.seconds, args.repeat, args.plan_points))


if __name__ == "__main__":
    main()
