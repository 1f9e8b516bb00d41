"""InfluxDB v2 export with store-and-forward: every reading taken arrives, with its own timestamp.

PRODUCT §2's schema: one measurement per template (`device` for a device without one), tags `site`
and `device`, one field per point, the reading's own timestamp (milliseconds). Alarm transitions go
to the measurement `alarm_event` (tags `site`, `device`, `alarm`, `priority`; fields `state`, `from`,
`episode`) so a dashboard can overlay them.

Path of a reading: `on_readings` turns a batch into line protocol in memory (never blocking the
loop; `LineBuilder` caches the escaped pieces) -> every `flush_interval` (or sooner, once
`batch_size` lines wait) the lines are written straight to the server when they are fewer than a
batch, nothing is queued and the server took the last batch (`_deliver`); the ones it does not take
at that first try, and every line of a burst or while something is queued, are appended to a
`SegmentQueue` with one write
(`<storage>/influx-queue/`), in chunks of up to `CHUNK_LINES` lines per entry, each compressed
(`spoolcodec`: a card's life is counted in bytes written) -> the sender peeks up to `batch_size`
lines in order, writes them with `influxdb-client`'s v2 write API and acknowledges them only after
the server said 2xx. Alarm events always go through the disk queue. While the server is away the
queue grows on disk up to `queue_max_mb`; then the oldest *readings* are dropped (a chunk at a time)
and counted, alarm events never. A restart (even after SIGKILL) replays what is on disk, in order.

A chunk holds lines of one kind only (readings or events, so events are never dropped), joined by
newlines the way they are sent: an entry costs the same whatever it holds
(docs/design/influx-export.md).
A queued chunk that does not decode (`CorruptChunk`: the queue's crc passed, so a bug or a chunk of
a later release) is skipped, counted (`corrupt`, in lines) and logged — never sent, never fatal.

Why numbers are written as floats: InfluxDB refuses a field whose type changes, and an MQTT device's
JSON does not say whether `5` is an int or a float. Only good readings are exported: `stale` has no
value, and `bad` is not a measurement anyone should trend (the local history keeps both).

Task: `fgw[influx].send`, owned by the gateway's TaskGroup; it spools, and runs the sender beside it
as `fgw[influx].drain`. The blocking client runs in a worker thread (a batch's peek, write and
acknowledgement in one call); the spool runs on the loop while the queue is small, in a thread
otherwise (`_put` says why); a lock keeps the queue to one thread at a time, and is never held
across a network write.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from config.mqtt_settings import Secret
from gateway.components import Capabilities, Component, ComponentContext
from gateway.export.lineproto import LineBuilder, line
from gateway.export.spoolcodec import CorruptChunk, decode, encode
from gateway.storage.segqueue import Entry, SegmentQueue
from ground.backoff import Backoff
from ground.model import Reading

if TYPE_CHECKING:
    from config.site import Site
    from rules.alarms import AlarmTransition

log = logging.getLogger("fgw.influx")

MAX_MEMORY_LINES = 100_000
"""Lines waiting in memory for the disk queue (only grows while the disk refuses writes)."""

ACK_ERROR = "cannot record a delivered batch:"
"""How `queue_error` starts while acknowledgements fail (the batch stays queued, sent again)."""

CHUNK_LINES = 1000
"""Lines per disk-queue entry at most (and never more than `batch_size`): big enough that the
per-entry cost vanishes, small enough that the bound drops readings in small steps."""

CHUNK_BYTES = 256 * 1024
"""Text per disk-queue entry at most (and at most a sixteenth of `queue_max_mb`), for the same reason;
counted in characters, which for line protocol (ASCII but for odd names) are its bytes."""

CLOSE_TIMEOUT = 5.0
"""Seconds a stop may spend sending what is queued; the rest stays on disk for the next start."""


def transition_line(site: str, t: AlarmTransition) -> tuple[str, float]:
    device, _, _ = t.alarm_id.partition(".")
    tags = {"site": site, "device": device, "alarm": t.alarm_id, "priority": t.alarm.priority}
    fields = {"state": str(t.to_state), "from": str(t.from_state), "episode": t.episode}
    text = line("alarm_event", tags, fields, t.at)
    assert text is not None
    return text, t.at


# ------------------------------------------------------------------------------ the server


class WriteRefused(Exception):
    """The server answered and refused the batch for good (4xx other than auth/rate limits)."""


class AckFailed(Exception):
    """The server has the batch, but the queue could not record it (a disk error): the batch stays
    queued and is written again later — the same points with the same timestamps, which InfluxDB
    stores once."""


class LineWriter(Protocol):
    def write(self, chunks: Sequence[bytes]) -> None:
        """Write one batch or raise (`WriteRefused` for a batch that can never be written).

        `chunks` are UTF-8 line protocol as queued (decoded): each is one or more lines joined by
        newlines, so the batch is the chunks joined by newlines (no line is split on the way).
        """
        ...

    def close(self) -> None: ...


class InfluxWriter:
    """The v2 write API through `influxdb-client`, synchronously (called from a worker thread).

    Retries are ours (the queue and a back-off), so the client's own are off.
    """

    def __init__(self, url: str, org: str, bucket: str, token: Secret | None, timeout: float):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url, self.org, self.bucket = url, org, bucket
        self._client = InfluxDBClient(
            url=url,
            token=token.reveal() if token is not None else "",
            org=org,
            timeout=int(timeout * 1000),
            retries=False,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, chunks: Sequence[bytes]) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(
                bucket=self.bucket, org=self.org, record=b"\n".join(chunks),
                write_precision=WritePrecision.MS,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (
                401, 403, 404, 408, 429,
            ):  # fmt: skip
                raise WriteRefused(f"HTTP {exc.status} {exc.reason}") from None
            raise

    def close(self) -> None:
        self._client.close()


def read_token(site: Site) -> Secret | None:
    """The token from `influx.token_file` (relative to the site file), masked.

    Raises:
        OSError: the file cannot be read (the message names it).
    """
    influx = site.file.influx
    if influx is None or influx.token_file is None:
        return None
    path = Path(influx.token_file).expanduser()
    if not path.is_absolute():
        path = site.path.parent / path
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise OSError(f"influx.token_file {path}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------------------ the component


class InfluxExporter(Component):
    """Readings and alarm events to InfluxDB through a bounded disk queue.

    Args:
        site: the site (its `influx:` section must be set).
        writer: the server side (default: `InfluxWriter` from the site's settings).
        backoff: retry pacing while the server is away (default 0.5 s doubling to 30 s).
    """

    name = "influx"

    def __init__(
        self, site: Site, *, writer: LineWriter | None = None, backoff: Backoff | None = None
    ) -> None:
        config = site.file.influx
        if config is None:
            raise ValueError("the site has no influx: section")
        self.site_id = site.id
        self.batch_size = config.batch_size
        self.flush_interval = config.flush_interval
        self.measurements = {d.id: d.measurement for d in site.devices.values()}
        self._lines = LineBuilder(site.id, self.measurements)
        self.queue = SegmentQueue(
            site.storage_dir / "influx-queue",
            int(config.queue_max_mb * 1024 * 1024),
        )
        self.chunk_lines = min(CHUNK_LINES, self.batch_size)
        self.chunk_bytes = min(CHUNK_BYTES, self.queue.max_bytes // 16)
        self._inline_spool_below = self.queue.max_bytes // 2  # see `_put`
        self.writer = writer or InfluxWriter(
            config.url, config.org, config.bucket, read_token(site), config.timeout
        )
        self.where = config.url
        self.backoff = backoff or Backoff()
        self._memory: list[tuple[str, float, bool]] = []  # (line, ts, droppable), in order
        self._full = min(self.batch_size, MAX_MEMORY_LINES + 1)  # a batch to send, or too many
        self._wakeup = asyncio.Event()
        self._spooled = asyncio.Event()  # the spooler tells the sender there is more on disk
        self._next_try = 0.0
        self._queue_lock = threading.Lock()  # one worker thread on the queue at a time
        self.sent = 0
        self.rejected = 0
        self.corrupt = 0  # lines in queued chunks that did not decode: skipped
        self.memory_dropped = 0
        self.last_error: str | None = None
        self.queue_error: str | None = None
        self.reachable: bool | None = None
        self.last_success: float | None = None

    # ------------------------------------------------------------------------------ hooks

    def on_readings(self, batch: Sequence[Reading]) -> None:
        memory = self._memory
        text = self._lines.poll_line(batch)
        if text is not None:
            memory.append((text, batch[0].ts, True))
        else:
            for text, ts in self._lines.lines(batch):
                memory.append((text, ts, True))
        if len(memory) >= self._full:
            self._remembered()

    def on_transitions(self, transitions: Sequence[AlarmTransition]) -> None:
        for t in transitions:
            text, ts = transition_line(self.site_id, t)
            self._memory.append((text, ts, False))
        self._remembered()

    def _remembered(self) -> None:
        """Keep memory bounded (only reached while the disk refuses writes), wake the sender."""
        memory = self._memory
        if len(memory) > MAX_MEMORY_LINES:
            self._drop_from_memory(len(memory) - MAX_MEMORY_LINES)
        if len(memory) >= self.batch_size:
            self._wakeup.set()

    def _drop_from_memory(self, excess: int) -> None:
        """Drop the `excess` oldest readings from memory (events stay), counted."""
        kept: list[tuple[str, float, bool]] = []
        dropped = 0
        for entry in self._memory:
            if dropped < excess and entry[2]:
                dropped += 1
            else:
                kept.append(entry)
        self._memory[:] = kept
        self.memory_dropped += dropped

    def flush(self) -> None:
        """Write what waits in memory now rather than at the next `flush_interval` (e.g. at the end of
        a burst, when no more readings will fill the batch)."""
        if self._memory:
            self._wakeup.set()

    # ------------------------------------------------------------------------------ running

    async def run(self) -> None:
        """Spool memory to disk every `flush_interval` (or once a batch waits) and, beside it, send.

        Why two tasks: the spooling of the next lines and the sending of the queued ones take turns
        in worker threads, and each hand-over of the interpreter lock between a worker and the
        event loop waits for the loop's thread; done one after the other, a batch's spool, write
        and acknowledgement added up and the sender fell behind a busy loop. Side by side (the
        queue lock still lets one thread at a time on the queue) the slower of the two sets the pace.
        """
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send_loop(), name="fgw[influx].drain")
            while True:
                try:
                    async with asyncio.timeout(self.flush_interval):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
                self._wakeup.clear()
                await self._deliver()
                self._spooled.set()

    async def _send_loop(self) -> None:
        """After every spool (at least every `flush_interval`): send what is queued, unless a failed
        write's back-off is still running (then the next spool looks again)."""
        while True:
            await self._spooled.wait()
            self._spooled.clear()
            if time.monotonic() >= self._next_try:
                await self._drain(deadline=None)

    async def _deliver(self) -> None:
        """Memory -> the server directly while the way is clear; else -> the disk queue.

        The way is clear when fewer lines wait than a batch (they come slower than a batch per
        `flush_interval`: a burst or a replay goes through the queue, which sends and spools side
        by side), nothing is queued on disk (order), the server took the last batch, and no alarm
        event waits (events are kept on disk until the server has them). Lines the server does
        not take go to the disk queue, before the newer ones; a crash loses at most what waits in
        memory: one `flush_interval` of lines and the batch on its way (one write's `timeout`).
        """
        if self._memory and self._direct_way_clear():
            lines, self._memory = self._memory, []
            try:
                count, error = await asyncio.to_thread(self._write_direct, lines)
            except asyncio.CancelledError:  # a stop: kept for `close` (a point is stored once)
                self._memory[:0] = lines
                raise
            if error is None:
                self.sent += count
                self._succeeded()
                return
            if isinstance(error, WriteRefused):
                self.rejected += count
                log.error("influx %s refused %d lines for good: %s", self.where, count, error)
                return
            self._memory[:0] = lines
            self._failed(error)
        await self._spool()

    def _direct_way_clear(self) -> bool:
        return (
            len(self._memory) < self.batch_size
            and self.reachable is not False
            and not len(self.queue)
            and all(droppable for _, _, droppable in self._memory)
        )

    def _write_direct(
        self, lines: Sequence[tuple[str, float, bool]]
    ) -> tuple[int, Exception | None]:
        """Worker thread: lines from memory -> the server, nothing on disk."""
        try:
            self.writer.write(["\n".join(text for text, _, _ in lines).encode()])
        except Exception as exc:
            return len(lines), exc
        return len(lines), None

    async def _spool(self) -> None:
        """Memory -> disk queue, in chunks, with one write."""
        if not self._memory:
            return
        lines, self._memory = self._memory, []
        try:
            if self.queue_error is None and self.queue.size_bytes < self._inline_spool_below:
                self._put(lines)
            else:
                await asyncio.to_thread(self._put, lines)
        except Exception as exc:  # OSError: disk full, I/O error
            self._memory[:0] = lines  # keep them, in order, and try again next time
            if self.queue_error is None:
                log.error("influx queue %s: cannot write: %s", self.queue.path, exc)
            self.queue_error = str(exc)
            return
        if self.queue_error is not None:
            log.info("influx queue %s: writing again", self.queue.path)
            self.queue_error = None

    def _put(self, lines: Sequence[tuple[str, float, bool]]) -> None:
        """Lines -> chunks -> the disk queue, with one write: on the loop while the queue is small
        (a copy into the page cache costs less than waking a thread for it), in a worker thread
        near the bound or after a write error (docs/design/influx-export.md). The chunks are
        compressed here too.
        """
        entries = [
            (encode(text), ts, droppable, count)
            for text, ts, droppable, count in chunks(lines, self.chunk_lines, self.chunk_bytes)
        ]
        with self._queue_lock:
            self.queue.put_many(entries)

    async def _drain(self, deadline: float | None) -> None:
        """Send queued batches in order until empty, a failure, or `deadline` (monotonic)."""
        while deadline is None or time.monotonic() < deadline:
            sent = await asyncio.to_thread(self._send_batch)
            if sent is None:
                return
            count, error = sent
            if isinstance(error, WriteRefused):
                self.rejected += count
                log.error("influx %s refused %d lines for good: %s", self.where, count, error)
            elif isinstance(error, AckFailed):
                self._ack_failed(error)
                return
            elif error is not None:  # connection refused, timeout, 5xx, auth
                self._failed(error)
                return
            self.sent += count
            self._succeeded()
            if self.queue_error is not None and self.queue_error.startswith(ACK_ERROR):
                log.info("influx queue %s: acknowledging again", self.queue.path)
                self.queue_error = None
            await asyncio.sleep(0)  # let readings in between batches of a long replay

    def _send_batch(self) -> tuple[int, Exception | None] | None:
        """Worker thread: the oldest `batch_size` lines -> the server -> off the queue.

        One worker call per batch (peek, write, ack) rather than one each: every hand-over between
        the event loop and a thread waits for the other side to be scheduled. The queue lock is
        held for the queue calls only, never across the network write. Returns None when the
        queue is empty, else the lines in the batch and the write's error: a `WriteRefused` batch
        is acknowledged (dropped for good), any other error leaves it queued.
        """
        with self._queue_lock:
            entries = self.queue.peek(self.batch_size)
        if not entries:
            return None
        texts, corrupt = self._decoded(entries)
        count = sum(e.items for e in entries) - corrupt
        error: Exception | None = None
        try:
            if texts:
                self.writer.write(texts)
        except WriteRefused as exc:
            error = exc
        except Exception as exc:
            return count, exc
        with self._queue_lock:
            # what the ack removed: the bound may have dropped (and counted) part of the batch
            # while it was on its way, when the spooler ran beside this write
            try:
                count = max(0, self.queue.ack(entries[-1].seq) - corrupt)
            except OSError as exc:  # must not end the exporter (and with it the gateway)
                return count, AckFailed(str(exc))
        self.corrupt += corrupt
        return count, error

    def _decoded(self, entries: Sequence[Entry]) -> tuple[list[bytes], int]:
        """The batch's line protocol, and the lines of the chunks that did not decode (logged)."""
        texts: list[bytes] = []
        corrupt = 0
        for e in entries:
            try:
                texts.append(decode(e.body))
            except CorruptChunk as exc:
                corrupt += e.items
                log.error(
                    "influx queue %s: entry %d (%d lines) unreadable, skipped: %s",
                    self.queue.path, e.seq, e.items, exc,
                )  # fmt: skip
        return texts, corrupt

    def _ack_failed(self, exc: AckFailed) -> None:
        """Delivered but not recorded: back off as after a failed write, then send it again."""
        if self.queue_error is None:
            log.error("influx queue %s: %s %s", self.queue.path, ACK_ERROR, exc)
        self.queue_error = f"{ACK_ERROR} {exc}"
        self.reachable = True  # the server answered: only the disk is at fault
        self._next_try = time.monotonic() + self.backoff.next_delay()

    def _failed(self, exc: Exception) -> None:
        if self.reachable is not False:
            log.warning(
                "influx %s unreachable (%s): queueing on disk", self.where, _short(exc),
                extra={"queued": len(self.queue)},
            )  # fmt: skip
        self.reachable = False
        self.last_error = _short(exc)
        self._next_try = time.monotonic() + self.backoff.next_delay()

    def _succeeded(self) -> None:
        if self.reachable is False:
            log.info("influx %s reachable again", self.where, extra={"queued": len(self.queue)})
        self.reachable = True
        self.last_error = None
        self.last_success = time.time()
        self.backoff.reset()
        self._next_try = 0.0

    async def close(self) -> None:
        """Spool memory to disk, send what can be sent within `CLOSE_TIMEOUT`, close."""
        try:
            await self._spool()
            if self.reachable is not False or time.monotonic() >= self._next_try:
                await self._drain(deadline=time.monotonic() + CLOSE_TIMEOUT)
        finally:
            if len(self.queue):
                log.info("influx: %d lines stay queued on disk for the next start", len(self.queue))
            await asyncio.to_thread(self._close_queue)
            self.writer.close()

    def _close_queue(self) -> None:
        with self._queue_lock:  # a cancelled worker call may still be on it
            self.queue.close()

    def stats(self) -> dict[str, Any]:
        """For health and /metrics: depth, oldest entry, drops, reachability."""
        oldest = None if self.queue.closed else self.queue.oldest()
        return {
            "reachable": self.reachable,
            "queued": len(self.queue) + len(self._memory),
            "queue_bytes": self.queue.size_bytes,
            "oldest": oldest,
            "dropped": self.queue.dropped + self.memory_dropped,
            "rejected": self.rejected,
            "corrupt": self.corrupt,
            "torn": self.queue.cut,
            "sent": self.sent,
            "last_error": self.last_error,
            "queue_error": self.queue_error,
            "last_success": self.last_success,
        }


def chunks(
    lines: Sequence[tuple[str, float, bool]], size: int, max_bytes: int
) -> list[tuple[bytes, float, bool, int]]:
    """`(line, ts, droppable)` in order -> disk-queue entries `(body, ts, droppable, lines)`.

    A chunk holds consecutive lines of one kind joined by newlines: at most `size` of them and,
    beyond its first line, at most `max_bytes` characters. Its `ts` is its first line's (so
    `stats()["oldest"]` is the first queued line's time, as with an entry per line).
    """
    out: list[tuple[bytes, float, bool, int]] = []
    start, total = 0, len(lines)
    while start < total:
        text, first_ts, droppable = lines[start]
        end, stop, used = start + 1, min(total, start + size), len(text)
        while end < stop:
            text, _, kind = lines[end]
            used += len(text) + 1
            if kind != droppable or used > max_bytes:
                break
            end += 1
        body = "\n".join([text for text, _, _ in lines[start:end]]).encode()
        out.append((body, first_ts, droppable, end - start))
        start = end
    return out


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def build(context: ComponentContext, capabilities: Capabilities) -> InfluxExporter | None:
    """The `gateway.registry` factory: an exporter when the site has an `influx:` section."""
    if context.site.file.influx is None:
        return None
    return InfluxExporter(context.site)
