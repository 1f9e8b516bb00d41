"""Bytes `fgw demo` writes to storage: the example site (its simulators in the same process).

    python -m bench.demo_writes [--seconds 300] [--settle 30] [--tree DIR]

`write_bytes` of /proc/PID/io over the window after settling, per second, per day and per value
polled (the values counted by the history's minute aggregates). The demo's process also runs the
simulators and the console; they write nothing of their own. `--tree DIR` runs another source tree.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.footprint import stored_samples
from bench.support import FGW, header, load_average, write_bytes


def run(seconds: float, settle: float, folder: Path, tree: Path | None) -> None:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    log = (folder / "demo.log").open("wb")
    demo = subprocess.Popen(
        [*FGW, "demo", "--workdir", str(folder / "demo"), "--log-level", "warning"],
        stdout=log, stderr=log, env=env, cwd=tree,
    )  # fmt: skip
    try:
        time.sleep(settle)
        written0, wall0 = write_bytes(demo.pid), time.time()
        time.sleep(seconds)
        written1, wall1 = write_bytes(demo.pid), time.time()
        exited = demo.poll()
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            try:
                demo.wait(20)
            except subprocess.TimeoutExpired:
                demo.kill()
                demo.wait()
        log.close()
    if exited is not None:
        raise SystemExit(f"fgw demo exited with {exited}: see {folder / 'demo.log'}")
    window = wall1 - wall0
    rate = (written1 - written0) / window
    print(f"fgw demo (examples/riverside.yaml), window {window:.0f} s after {settle:.0f} s")
    print(f"  bytes written        : {rate / 1024:,.2f} KiB/s, {rate * 86400 / 1e9:.3f} GB/day")
    files = list((folder / "demo").rglob("history.sqlite3"))
    counted = stored_samples(files[0], wall0, wall1) if files else None
    if counted is not None and counted[1]:
        samples, polled, covered = counted
        print(f"  values polled        : {polled / covered:,.1f}/s (good numbers, whole minutes), "
              f"stored {samples / window:,.1f}/s; {rate * covered / polled:.1f} bytes written "
              f"per value polled")  # fmt: skip
    print(f"  load average at end  : {load_average()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--tree", type=Path, help="run the demo from this source tree")
    args = parser.parse_args(argv)
    header("demo_writes")
    with tempfile.TemporaryDirectory(prefix="fgw-bench-demo-") as tmp:
        run(args.seconds, args.settle, Path(tmp), args.tree)


if __name__ == "__main__":
    main()
