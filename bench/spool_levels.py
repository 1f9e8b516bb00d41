"""The export queue's chunk codec at each zlib level: bytes a value on disk, and the CPU it costs.

    python -m bench.spool_levels [--devices 100] [--seconds 30]

Chunks are made as the exporter makes them at `flush_interval` 1 s: one spool's lines (here a line
per device poll, `--devices` of them; a gateway makes a line per block read) per chunk, at most
`CHUNK_LINES`. Bytes a value count the queue
record as written: the 32-byte record header, the version byte and zlib's stream ("text" is the
chunk as the release before queued it). CPU is the median of 5 rounds of encoding every chunk, in
this process. `bench.footprint --export sink` runs the same table on the lines a real gateway
exported; alone, this bench makes its lines from `bench.rules.poll_values` (noisy analog values
with every digit of a float: the hard case for a compressor).
"""

from __future__ import annotations

import argparse
import random
import time
import zlib
from collections.abc import Sequence

from bench.rules import poll_values
from bench.sites import MODBUS_TEMPLATES
from bench.support import header, median
from gateway.export.influx import CHUNK_LINES
from gateway.export.lineproto import LineBuilder
from gateway.export.spoolcodec import LEVEL, encode
from gateway.model import Quality, Reading
from gateway.storage.segqueue import RECORD_OVERHEAD

LEVELS = (1, 3, 6, 9)


def values_in(line: bytes) -> int:
    """Fields of one line of the gateway's line protocol (no escaped spaces in its names)."""
    parts = line.split(b" ")
    return parts[1].count(b",") + 1 if len(parts) == 3 else 0


def level_table(lines: Sequence[bytes], chunk_lines: int, rounds: int = 5) -> list[str]:
    """One row per codec: bytes a value queued and the encoding's CPU, on `lines` in chunks."""
    size = max(1, min(chunk_lines, CHUNK_LINES))
    chunks = [b"\n".join(lines[i : i + size]) for i in range(0, len(lines), size)]
    values = sum(values_in(line) for line in lines)
    if not chunks or not values:
        return ["  (no lines to try the codec on)"]
    text = sum(len(c) for c in chunks)
    rows = [
        f"  codec on {len(lines):,} lines ({values:,} values, {text / values:.1f} bytes of text "
        f"a value) in {len(chunks)} chunks of {size} lines:",
        f"    {'codec':<18}{'bytes/value':>12}{'ratio':>8}{'µs/chunk':>10}{'µs/1k values':>14}",
        f"    {'text (before)':<18}{(text + RECORD_OVERHEAD * len(chunks)) / values:>12.2f}"
        f"{1.0:>8.2f}{0:>10}{0:>14}",
    ]
    for level in LEVELS:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            bodies = [encode(c, level) for c in chunks]
            times.append(time.perf_counter() - start)
        queued = sum(len(b) for b in bodies) + RECORD_OVERHEAD * len(chunks)
        cpu = median(times) * 1e6
        mark = " (default)" if level == LEVEL else ""
        rows.append(
            f"    {'zlib ' + str(level) + mark:<18}{queued / values:>12.2f}{text / queued:>8.2f}"
            f"{cpu / len(chunks):>10.0f}{cpu * 1000 / values:>14.1f}"
        )
    assert zlib.decompress(bodies[0][1:]) == chunks[0]
    return rows


def generated_lines(devices: int, seconds: int, seed: int = 1) -> list[bytes]:
    """`seconds` of polls of `devices` devices (the Modbus templates in turn) as line protocol."""
    rng = random.Random(seed)
    ids = {
        f"{MODBUS_TEMPLATES[n % 4].replace('_', '-')}-{n + 1}": MODBUS_TEMPLATES[n % 4]
        for n in range(devices)
    }
    builder = LineBuilder("bench", ids)
    lines = []
    for second in range(seconds):
        for n, (device, template) in enumerate(ids.items()):
            ts = 1_800_000_000.0 + second + n / devices
            batch = [
                Reading(device, point, value, Quality.GOOD, ts)  # type: ignore[arg-type]
                for point, value in poll_values(template, rng).items()
            ]
            lines += [text.encode() for text, _ in builder.lines(batch)]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100, help="lines a spool (1 s) holds")
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args(argv)
    header("spool_levels")
    for row in level_table(generated_lines(args.devices, args.seconds), args.devices):
        print(row)


if __name__ == "__main__":
    main()
