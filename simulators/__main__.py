"""`python -m simulators SITE [--broker HOST:PORT] [--seed N]`: the site's simulators without `fgw`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from config.site import load_site
from simulators.runner import run_until_cancelled


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    parser.add_argument("site", help="the site file")
    parser.add_argument("--broker", help="MQTT broker HOST:PORT (default: the site's mqtt)")
    parser.add_argument("--seed", type=int, help="fixed seed for reproducible physics")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, port = None, None
    if args.broker:
        host, _, port_text = args.broker.rpartition(":")
        port = int(port_text)
    site = load_site(args.site)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_until_cancelled(site, host or None, port, seed=args.seed))


if __name__ == "__main__":
    main()
