"""From `fgw inject … fire --zone 3` to the retained fire alarm on MQTT: how long it takes.

    python -m bench.fire_latency [--rounds 20]

Runs the bundled example site (fire panel polled every 500 ms) with its simulators, a private
Mosquitto and the gateway in one process, then repeats: inject a fire over the simulators' MQTT
control channel (as `fgw inject` does), wait for `P/alarms/fire-1/fire_alarm` to say
`active_unack`, clear it, acknowledge, wait for normal. Prints p50/p95/max of inject -> alarm. The
poll interval bounds it from below: a fire that starts just after a poll waits up to 500 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from config.site import load_site
from gateway.demo import EXAMPLE, free_port, start_broker, write_demo_site
from gateway.service import Gateway
from simulators.control import send_inject
from simulators.runner import SiteSimulator
from tests.e2e import watching


async def measure(rounds: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="fgw-latency-") as tmp:
        folder = Path(tmp)
        port = free_port()
        site_path = write_demo_site(EXAMPLE, folder, port)
        text = site_path.read_text().replace(
            "listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{free_port()}"
        )
        # many fires a minute would (rightly) be latched as chattering: allow them here
        text += "alarms: {chattering: {activations: 1000, window: 60s}}\n"
        site_path.write_text(text)
        broker = start_broker(folder, port)
        try:
            site = load_site(site_path)
            async with (
                SiteSimulator(site, "127.0.0.1", port, seed=1),
                watching(port, site.topic_prefix) as watcher,
            ):
                gateway = Gateway(site)
                stop = asyncio.Event()
                task = asyncio.create_task(gateway.run(stop))
                await watcher.wait_for(lambda: watcher.status == "online", timeout=30)
                loop = asyncio.get_running_loop()
                samples = []
                for _ in range(rounds):
                    started = loop.time()
                    await send_inject(
                        "127.0.0.1", port, site.id, "fire-1", {"fault": "fire", "zone": 3}
                    )
                    await watcher.wait_alarm("fire-1", "fire_alarm", "active_unack", timeout=30)
                    samples.append(loop.time() - started)
                    await send_inject("127.0.0.1", port, site.id, "fire-1", {"fault": "clear"})
                    await watcher.wait_alarm("fire-1", "fire_alarm", "rtn_unack", timeout=30)
                    gateway.acknowledge("fire-1.fire_alarm", "bench", "")
                    await watcher.wait_for(
                        lambda: watcher.alarm("fire-1", "fire_alarm") is None, 30
                    )
                stop.set()
                await task
        finally:
            broker.terminate()
            broker.wait(5)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    samples = sorted(asyncio.run(measure(args.rounds)))
    p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
    print(f"rounds: {len(samples)}, fire panel polled every 500 ms")
    print(f"inject -> retained fire alarm: p50 {1000 * statistics.median(samples):.0f} ms, "
          f"p95 {1000 * p95:.0f} ms, max {1000 * samples[-1]:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
