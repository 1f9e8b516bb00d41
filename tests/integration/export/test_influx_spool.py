"""The exporter's disk queue holds compressed chunks (`gateway.export.spoolcodec`): what it writes,
what it reads back after an upgrade or a crash, and what it does with a chunk it cannot read.

The queue itself (records, crc, bound): test_segqueue.py; the exporter's protocol: test_influx_export.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from config.site import Site, load_site
from gateway.export.influx import InfluxExporter
from gateway.export.spoolcodec import ZLIB, decode
from gateway.storage.segqueue import SegmentQueue, read_queue
from ground.model import Quality, Reading
from tests.support import ROOT

T = 1_790_000_000.0
POINTS = ("outlet_pressure", "flow", "motor_current", "vibration", "run_hours")


class Accepting:
    """A `LineWriter` that takes every batch (or refuses all while `up` is false)."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.lines: list[str] = []

    def write(self, chunks: Sequence[bytes]) -> None:
        if not self.up:
            raise ConnectionRefusedError("connection refused")
        self.lines.extend(b"\n".join(chunks).decode().split("\n"))

    def close(self) -> None:
        pass


def _site(tmp_path: Path) -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: riverside}\nstorage: {path: ./state}\n"
        "influx: {url: 'http://127.0.0.1:9', org: o, bucket: b}\n"
        "modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502}]\n"
        "devices:\n"
        + "".join(
            f"  - {{id: pump-{n}, template: booster_pump, modbus: {{bus: bus, unit: {n}}}}}\n"
            for n in range(1, 21)
        )
    )
    return load_site(path)


def _poll(device: int, i: int) -> list[Reading]:
    """A device's poll `i`: numbers as a scaled register gives them, its own time."""
    ts = T + i + device / 100
    return [
        Reading(f"pump-{device}", p, round(4 + ((i * 7 + k * 13 + device) % 50) / 100, 2),
                Quality.GOOD, ts)
        for k, p in enumerate(POINTS)
    ]  # fmt: skip


def _stamps(lines: Sequence[str]) -> list[int]:
    return [int(text.rsplit(" ", 1)[1]) for text in lines]


async def test_chunks_on_disk_are_compressed_and_sent_as_the_lines_were(tmp_path: Path) -> None:
    writer = Accepting(up=False)
    exporter = InfluxExporter(_site(tmp_path), writer=writer)
    for i in range(30):
        for device in range(1, 21):
            exporter.on_readings(_poll(device, i))
        await exporter._spool()  # a spool a second, as at flush_interval 1 s
    entries = read_queue(exporter.queue.path)
    assert len(entries) == 30 and all(e.body[0] == ZLIB for e in entries)
    texts = [decode(e.body) for e in entries]
    assert [t.count(b"\n") + 1 for t in texts] == [e.items for e in entries] == [20] * 30
    text_bytes = sum(len(t) for t in texts)
    assert exporter.queue.size_bytes * 3 < text_bytes  # bodies and headers against the text
    writer.up = True
    await exporter._drain(deadline=None)
    assert writer.lines == [line for t in texts for line in t.decode().split("\n")]
    assert _stamps(writer.lines) == sorted(_stamps(writer.lines)) and len(writer.lines) == 600
    assert exporter.stats()["queued"] == 0 and exporter.stats()["corrupt"] == 0
    await exporter.close()


async def test_text_chunks_of_the_release_before_are_sent_after_an_upgrade(tmp_path: Path) -> None:
    site = _site(tmp_path)
    lines = [
        f"booster_pump,device=pump-1,site=riverside flow={i}.5 {int(T) * 1000 + i}"
        for i in range(9)
    ]
    queue = SegmentQueue(site.storage_dir / "influx-queue", 1 << 20)
    queue.put_many(
        [("\n".join(lines[:4]).encode(), T, True, 4), ("\n".join(lines[4:]).encode(), T, True, 5)]
    )
    queue.close()
    writer = Accepting()
    exporter = InfluxExporter(site, writer=writer)
    exporter.on_readings(_poll(1, 100))
    await exporter._spool()  # a new, compressed chunk behind the old ones
    await exporter._drain(deadline=None)
    assert writer.lines[:9] == lines and len(writer.lines) == 10
    assert exporter.stats()["sent"] == 10 and exporter.stats()["corrupt"] == 0
    await exporter.close()


async def test_a_chunk_that_does_not_decode_is_skipped_counted_and_the_rest_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The queue's crc passes (the record is whole) but the body is no chunk this release reads:
    e.g. written by a later release with another version byte, or damaged before it was queued."""
    site = _site(tmp_path)
    writer = Accepting(up=False)
    exporter = InfluxExporter(site, writer=writer)
    exporter.on_readings(_poll(1, 0))
    await exporter._spool()
    exporter.queue.put_many(
        [(b"\x07later format", T + 1, True, 3), (b"\x01not zlib", T + 2, True, 2)]
    )
    exporter.on_readings(_poll(2, 3))
    await exporter._spool()
    writer.up = True
    await exporter._drain(deadline=None)
    assert _stamps(writer.lines) == [round((T + 0.01) * 1000), round((T + 3.02) * 1000)]
    stats = exporter.stats()
    assert (stats["sent"], stats["corrupt"], stats["queued"]) == (2, 5, 0)
    assert stats["reachable"] is True
    assert "unreadable, skipped: unknown chunk format 0x07" in caplog.text
    assert "unreadable, skipped: damaged chunk" in caplog.text
    await exporter.close()


CHILD = """
import asyncio, sys
sys.path.insert(0, {root!r})
from tests.integration.export.test_influx_spool import Accepting, _poll, _site
from gateway.export.influx import InfluxExporter
from pathlib import Path

async def main() -> None:
    exporter = InfluxExporter(_site(Path({folder!r})), writer=Accepting(up=False))
    i = 0
    while True:
        for device in range(1, 21):
            exporter.on_readings(_poll(device, i))
        await exporter._spool()
        i += 1
        if i % 10 == 0:
            print(i, flush=True)

asyncio.run(main())
"""


def _killed_mid_spool(tmp_path: Path) -> int:
    """Spool in a child process until 50 spools are on disk, SIGKILL it, then tear its last record
    as a power cut would; returns the lines the queue files still hold whole."""
    root = str(ROOT)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=root, folder=str(tmp_path))],
        stdout=subprocess.PIPE, cwd=root,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        while int(child.stdout.readline() or b"0") < 50:  # 50 spools of 20 polls on disk
            assert child.poll() is None, "the spooling process ended"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
    folder = tmp_path / "state" / "influx-queue"
    segment = max(folder.glob("*.seg"), key=lambda p: int(p.stem))
    os.truncate(segment, segment.stat().st_size - 5)  # the last record's end never written
    return sum(e.items for e in read_queue(folder))


async def test_sigkill_mid_spool_then_a_torn_tail_loses_only_that_chunk(tmp_path: Path) -> None:
    """A gateway killed while spooling, its last record torn: the next start counts the cut, and
    every chunk before it decodes and is sent, in order, none missing."""
    whole = _killed_mid_spool(tmp_path)
    writer = Accepting()
    exporter = InfluxExporter(_site(tmp_path), writer=writer)
    assert exporter.stats()["torn"] == 1
    await exporter._drain(deadline=None)
    sent = _stamps(writer.lines)
    polls = [round((T + i + d / 100) * 1000) for i in range(len(sent) // 20) for d in range(1, 21)]
    assert sent == polls  # the first N spools, whole, in order: only the torn chunk is gone
    assert len(sent) >= 50 * 20 - 20 and len(sent) == whole
    assert exporter.stats()["corrupt"] == 0 and exporter.stats()["queued"] == 0
    await exporter.close()
