"""InfluxDB export: line protocol and the exporter's store-and-forward with a recording writer. A
round trip through a real v2 write API: tests/integration/export/test_influx_export.py. The disk
queue itself: tests/unit/gateway/storage/test_segqueue.py.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from config.site import Site, load_site
from gateway.export import influx
from gateway.export.influx import ACK_ERROR, InfluxExporter, WriteRefused, chunks
from gateway.export.lineproto import line, reading_lines
from ground.backoff import Backoff
from ground.model import Quality, Reading

T = 1_790_000_000.123


def test_line_protocol_escaping_types_and_millisecond_time() -> None:
    text = line(
        "booster pump",
        {"site": "a b", "device": "p=1,x"},
        {"v": 1, "f": 2.5, "ok": True, "s": 'say "hi"\\', "nan": float("nan"), "none": None},
        T,
    )
    assert text == (
        'booster\\ pump,device=p\\=1\\,x,site=a\\ b v=1.0,f=2.5,ok=true,s="say \\"hi\\"\\\\" '
        "1790000000123"
    )
    assert line("m", {"site": "s"}, {"nan": float("inf")}, T) is None


def test_good_readings_grouped_per_device_and_time_under_the_template_measurement() -> None:
    batch = [
        Reading("pump-1", "outlet_pressure", 3.5, Quality.GOOD, T),
        Reading("pump-1", "running", True, Quality.GOOD, T),
        Reading("pump-1", "flow", None, Quality.STALE, T),
        Reading("pump-1", "vibration", 99.0, Quality.BAD, T),
        Reading("tank-1", "level", 40, Quality.GOOD, T + 1),
    ]
    lines = reading_lines("riverside", {"pump-1": "booster_pump"}, batch)
    assert lines == [
        ("booster_pump,device=pump-1,site=riverside outlet_pressure=3.5,running=true "
         "1790000000123", T),
        ("device,device=tank-1,site=riverside level=40.0 1790000001123", T + 1),
    ]  # fmt: skip


def transition(at: float) -> Any:
    """What `transition_line` reads of an `AlarmTransition`."""
    return SimpleNamespace(
        alarm_id="pump-1.dry_run", alarm=SimpleNamespace(priority="high"), episode=1, at=at,
        to_state="active_unack", from_state="normal",
    )  # fmt: skip


class Recording:
    """A `LineWriter` that is down until told otherwise, and remembers what it accepted."""

    def __init__(self) -> None:
        self.up = False
        self.refuse = False
        self.lines: list[str] = []
        self.closed = False

    def write(self, chunks: Sequence[bytes]) -> None:
        if self.refuse:
            raise WriteRefused("HTTP 400 bad line")
        if not self.up:
            raise ConnectionRefusedError("connection refused")
        self.lines.extend(b"\n".join(chunks).decode().split("\n"))

    def close(self) -> None:
        self.closed = True


def site_with_influx(tmp_path: Path, url: str = "http://127.0.0.1:9", extra: str = "") -> Site:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {id: riverside}\nstorage: {path: ./state}\n"
        f"influx: {{url: '{url}', org: o, bucket: b, flush_interval: 100ms{extra}}}\n"
        "modbus: [{id: bus, transport: tcp, host: 127.0.0.1, port: 1502}]\n"
        "devices:\n  - {id: pump-1, template: booster_pump, modbus: {bus: bus, unit: 1}}\n"
    )
    return load_site(path)


async def test_store_and_forward_across_an_outage_and_a_restart(tmp_path: Path) -> None:
    site = site_with_influx(tmp_path)
    writer = Recording()
    exporter = InfluxExporter(site, writer=writer)
    for i in range(50):
        exporter.on_readings([Reading("pump-1", "flow", float(i), Quality.GOOD, T + i)])
    await exporter._spool()
    await exporter._drain(deadline=None)
    stats = exporter.stats()
    assert stats["reachable"] is False and stats["queued"] == 50 and stats["oldest"] == T
    await exporter.close()  # a restart while the server is still away
    again = InfluxExporter(site, writer=writer)
    assert again.stats()["queued"] == 50
    writer.up = True
    await again._drain(deadline=None)
    assert [int(x.rsplit(" ", 1)[1]) for x in writer.lines] == [
        round((T + i) * 1000) for i in range(50)
    ]  # in order, each with its own time
    assert again.stats()["queued"] == 0 and again.stats()["reachable"] is True
    writer.refuse = True  # a batch the server refuses for good is dropped, counted, not retried
    again.on_readings([Reading("pump-1", "flow", 1.0, Quality.GOOD, T + 99)])
    await again._spool()
    await again._drain(deadline=None)
    assert again.stats()["rejected"] == 1 and again.stats()["queued"] == 0
    await again.close()
    assert writer.closed


async def test_lines_are_queued_in_chunks_and_sent_one_per_line(tmp_path: Path) -> None:
    site = site_with_influx(tmp_path, extra=", batch_size: 7")
    writer = Recording()
    exporter = InfluxExporter(site, writer=writer)
    for i in range(10):
        exporter.on_readings([Reading("pump-1", "flow", float(i), Quality.GOOD, T + i)])
    exporter.on_transitions([transition(T + 10)])
    for i in range(11, 14):
        exporter.on_readings([Reading("pump-1", "flow", float(i), Quality.GOOD, T + i)])
    await exporter._spool()
    rows = [(e.items, e.droppable, e.ts) for e in exporter.queue.peek(100)]
    assert rows == [(7, True, T), (3, True, T + 7), (1, False, T + 10), (3, True, T + 11)]
    assert exporter.stats()["queued"] == 14
    writer.up = True
    await exporter._drain(deadline=None)
    assert [int(x.rsplit(" ", 1)[1]) for x in writer.lines] == [
        round((T + i) * 1000) for i in range(14)
    ]
    assert writer.lines[10].startswith("alarm_event,")
    assert exporter.stats()["sent"] == 14 and exporter.stats()["queued"] == 0
    await exporter.close()


async def test_memory_bound_drops_the_oldest_readings_and_keeps_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(influx, "MAX_MEMORY_LINES", 5)
    exporter = InfluxExporter(site_with_influx(tmp_path), writer=Recording())
    exporter.on_transitions([transition(T)])
    exporter.on_readings(
        [Reading("pump-1", "flow", float(i), Quality.GOOD, T + i) for i in range(8)]
    )
    kept = [text.rsplit(" ", 1)[1] for text, _, _ in exporter._memory]
    assert kept[0] == str(round(T * 1000)) and len(kept) == 5  # the event, then the newest 4
    assert kept[1:] == [str(round((T + i) * 1000)) for i in range(4, 8)]
    assert exporter.stats()["dropped"] == 4
    await exporter.close()


def test_chunks_hold_one_kind_within_a_line_count_and_a_size() -> None:
    lines = [("a" * 9, 1.0, True), ("b" * 9, 2.0, True), ("c" * 9, 3.0, True)]
    lines += [("e", 4.0, False), ("f" * 30, 5.0, True), ("g", 6.0, True)]
    assert chunks(lines, 2, 1000) == [
        (b"aaaaaaaaa\nbbbbbbbbb", 1.0, True, 2),
        (b"ccccccccc", 3.0, True, 1),
        (b"e", 4.0, False, 1),
        (b"f" * 30 + b"\ng", 5.0, True, 2),
    ]
    assert [c[3] for c in chunks(lines, 10, 19)] == [2, 1, 1, 1, 1]  # 9 + 1 + 9 fit in 19
    assert chunks([], 10, 10) == []


def test_a_small_queue_bound_makes_small_chunks(tmp_path: Path) -> None:
    exporter = InfluxExporter(
        site_with_influx(tmp_path, extra=", queue_max_mb: 1"), writer=Recording()
    )
    assert exporter.chunk_bytes == 65536 and exporter.chunk_lines == 1000
    exporter.queue.close()


async def test_a_failed_acknowledgement_keeps_the_exporter_and_sends_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error while recording a delivered batch must not end the exporter's task (that
    would end the gateway): the batch stays queued, the error is reported, and after a back-off
    the batch goes again (the same points and times: InfluxDB keeps one of each)."""
    site = site_with_influx(tmp_path)
    writer = Recording()
    writer.up = True
    exporter = InfluxExporter(site, writer=writer, backoff=Backoff(initial=0.01, cap=0.01))
    for i in range(5):
        exporter.on_readings([Reading("pump-1", "flow", float(i), Quality.GOOD, T + i)])
    await exporter._spool()
    ack = exporter.queue.ack

    def broken(seq: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(exporter.queue, "ack", broken)
    await exporter._drain(deadline=None)  # returns instead of raising
    stats = exporter.stats()
    assert stats["queued"] == 5 and stats["sent"] == 0
    assert stats["queue_error"].startswith(ACK_ERROR) and stats["reachable"] is True
    monkeypatch.setattr(exporter.queue, "ack", ack)
    await asyncio.sleep(0.02)  # the back-off
    await exporter._drain(deadline=None)
    stats = exporter.stats()
    assert stats["queued"] == 0 and stats["sent"] == 5 and stats["queue_error"] is None
    assert len(writer.lines) == 10  # delivered twice: at least once, never lost
    await exporter.close()


def flow(i: int) -> list[Reading]:
    return [Reading("pump-1", "flow", float(i), Quality.GOOD, T + i)]


def sent_times(writer: Recording) -> list[int]:
    return [int(x.rsplit(" ", 1)[1]) - round(T * 1000) for x in writer.lines]


async def test_lines_the_server_takes_at_once_are_never_written_to_disk(tmp_path: Path) -> None:
    writer = Recording()
    writer.up = True
    exporter = InfluxExporter(site_with_influx(tmp_path), writer=writer)
    for i in range(10):
        exporter.on_readings(flow(i))
    await exporter._deliver()
    assert sent_times(writer) == [i * 1000 for i in range(10)]
    assert exporter.stats()["sent"] == 10 and exporter.stats()["queued"] == 0
    assert exporter.queue.size_bytes == 0  # the card was spared
    await exporter.close()


async def test_a_batch_the_server_does_not_take_goes_to_disk_before_the_newer_lines(
    tmp_path: Path,
) -> None:
    writer = Recording()
    site = site_with_influx(tmp_path)
    exporter = InfluxExporter(site, writer=writer, backoff=Backoff(initial=0.01, cap=0.01))
    for i in range(3):
        exporter.on_readings(flow(i))
    await exporter._deliver()  # the server is away: on disk
    assert exporter.queue.size_bytes > 0 and len(exporter.queue) == 3
    assert exporter.stats()["reachable"] is False
    writer.up = True
    exporter.on_readings(flow(3))
    await exporter._deliver()  # the server answered nothing yet: behind the queued ones
    assert len(exporter.queue) == 4 and writer.lines == []
    await asyncio.sleep(0.02)  # the back-off
    await exporter._drain(deadline=None)
    exporter.on_readings(flow(4))
    await exporter._deliver()  # the queue is empty and the server answers: straight there
    assert sent_times(writer) == [i * 1000 for i in range(5)]
    assert len(exporter.queue) == 0
    await exporter.close()  # a restart: nothing comes back
    again = InfluxExporter(site, writer=writer)
    assert len(again.queue) == 0
    again.queue.close()


async def test_alarm_events_go_through_the_disk_queue_even_when_the_server_answers(
    tmp_path: Path,
) -> None:
    writer = Recording()
    writer.up = True
    exporter = InfluxExporter(site_with_influx(tmp_path), writer=writer)
    exporter.on_readings(flow(0))
    exporter.on_transitions([transition(T + 1)])
    await exporter._deliver()
    assert writer.lines == [] and len(exporter.queue) == 2  # on disk until the server has them
    await exporter._drain(deadline=None)
    assert len(writer.lines) == 2 and writer.lines[1].startswith("alarm_event,")
    await exporter.close()


async def test_a_burst_goes_through_the_disk_queue(tmp_path: Path) -> None:
    """A batch or more within one `flush_interval` (a replay, a burst): the queue sends and spools
    side by side, where a direct write would hold the next lines back."""
    writer = Recording()
    writer.up = True
    exporter = InfluxExporter(site_with_influx(tmp_path, extra=", batch_size: 4"), writer=writer)
    for i in range(8):
        exporter.on_readings(flow(i))
    await exporter._deliver()
    assert writer.lines == [] and len(exporter.queue) == 8
    await exporter._drain(deadline=None)
    assert sent_times(writer) == [i * 1000 for i in range(8)]
    await exporter.close()


async def test_a_stop_during_a_direct_write_keeps_its_lines_for_the_queue(tmp_path: Path) -> None:
    class Slow(Recording):
        def write(self, chunks: Sequence[bytes]) -> None:
            time.sleep(0.2)
            raise ConnectionRefusedError("too late")

    site = site_with_influx(tmp_path)
    exporter = InfluxExporter(site, writer=Slow())
    for i in range(3):
        exporter.on_readings(flow(i))
    task = asyncio.create_task(exporter._deliver())
    await asyncio.sleep(0.05)  # the write is on its way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await exporter.close()  # spools what memory holds
    again = InfluxExporter(site, writer=Recording())
    assert len(again.queue) == 3
    again.queue.close()
