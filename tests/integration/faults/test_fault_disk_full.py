"""Fault injection: the storage disk fills up (issue 6). A small tmpfs is mounted for the storage
folder (a loop-mounted ext4 image when tmpfs is refused); a filler file takes the last byte.

Then: a fire alarm still reaches MQTT (the publisher's outbox keeps it in memory when the disk
refuses it), the error is reported (health: degraded, with the reason; one log line), and once space
returns the gateway recovers by itself: storage errors clear, the journal catches up with every
transition (kept in memory meanwhile), and the history is written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.site import load_site
from gateway.service import Gateway
from simulators.runner import SiteSimulator
from tests.e2e import watching
from tests.reliability_support import until, write_fault_site
from tests.support import Broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SIZE_MB = 8


def _run(*command: str) -> bool:
    return subprocess.run(command, capture_output=True, timeout=30).returncode == 0


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[Path]:
    """A file system of SIZE_MB mounted at `folder`: tmpfs, else a loop-mounted ext4 image."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (tmpfs or a loop device)")
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m,mode=0700", "tmpfs", str(folder))
    if not mounted:
        image = folder.parent / "disk.img"
        with image.open("wb") as f:
            f.truncate(SIZE_MB * 1024 * 1024)
        mounted = _run("mkfs.ext4", "-q", str(image)) and _run(
            "mount", "-o", "loop", str(image), str(folder)
        )
    if not mounted:
        pytest.skip("neither a tmpfs nor a loop-mounted ext4 image could be mounted here")
    try:
        yield folder
    finally:
        for _ in range(50):
            if _run("umount", str(folder)):
                break
            time.sleep(0.1)  # a file may still be closing


def fill(folder: Path) -> Path:
    """Write a filler file until the disk says it is full."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def storage_errors(gateway: Gateway) -> dict[str, object]:
    checks = gateway.health()["checks"]
    found = {k: v for k, v in checks["storage"].items() if k not in ("status", "detail")}
    if checks["history"].get("error"):
        found["history"] = checks["history"]["error"]
    return found


async def test_disk_full_keeps_alarms_flowing_reports_and_recovers(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with small_disk(tmp_path / "disk") as disk:
        site = load_site(write_fault_site(tmp_path, broker.port, storage=str(disk)))
        gateway = Gateway(site)
        gateway.history.commit_interval = 0.2
        stop = asyncio.Event()
        async with (
            SiteSimulator(site, mqtt=False, seed=11) as sims,
            watching(broker.port, site.topic_prefix) as watcher,
        ):
            run = asyncio.create_task(gateway.run(stop), name="test.gateway")
            try:
                await watcher.wait_for(lambda: watcher.status == "online")
                await until(lambda: gateway.history.rows_written > 100, 10, "history written")

                filler = await asyncio.to_thread(fill, disk)
                full_at = time.monotonic()
                sims.devices["fire-1"].inject("fire", zone=5)
                alarm = await watcher.wait_alarm("fire-1", "fire_alarm", "active_unack", 15)
                assert alarm["priority"] == "critical"
                errors = await until(lambda: storage_errors(gateway), 15, "storage error reported")
                assert gateway.health()["status"] == "degraded"
                assert any("full" in str(e) for e in errors.values()), errors
                sims.devices["fire-1"].clear()
                await watcher.wait_alarm("fire-1", "fire_alarm", "rtn_unack", 15)
                logged = [r for r in caplog.records if "cannot write" in r.getMessage()]
                assert logged, "the full disk was not logged"
                assert len(logged) <= 4  # once per store, not once per write

                filler.unlink()
                freed_at = time.monotonic()
                await until(lambda: not storage_errors(gateway), 20, "storage errors cleared")
                recovered = time.monotonic() - freed_at
                written = gateway.history.rows_written
                await until(lambda: gateway.history.rows_written > written, 10, "history again")
                steps = [
                    (e.from_state, e.to_state) for e in gateway.store.journal("fire-1.fire_alarm")
                ]
                assert ("normal", "active_unack") in steps and (
                    "active_unack",
                    "rtn_unack",
                ) in steps
                assert any("writing again" in r.getMessage() for r in caplog.records)
            finally:
                stop.set()
                await asyncio.wait_for(run, 30)
    print(
        f"\nFIGURE disk full: alarm on MQTT while full; reported: {', '.join(sorted(errors))}; "
        f"recovered {recovered:.1f}s after space returned "
        f"(full for {freed_at - full_at:.1f}s)"
    )
