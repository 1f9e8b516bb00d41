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

The last row is a what-if, not what the gateway does: every number that is exactly a float32 (a
float32 register widened to a float) written as the shortest decimal of that float32
(`230.34627` rather than `230.3462677001953`), at the chosen level.
"""

from __future__ import annotations

import argparse
import random
import re
import struct
import time
import zlib
from collections.abc import Sequence

from bench.rules import poll_values
from bench.sites import MODBUS_TEMPLATES
from bench.support import header, median
from gateway.export.influx import CHUNK_LINES
from gateway.export.lineproto import LineBuilder
from gateway.export.spoolcodec import LEVEL, encode
from gateway.storage.segqueue import RECORD_OVERHEAD
from ground.model import Quality, Reading

LEVELS = (1, 3, 6, 9)
NUMBER = re.compile(rb"(?<==)-?\d+\.\d+(?:e[+-]?\d+)?")
FLOAT32 = struct.Struct("<f")


def _as_float32(x: float) -> float:
    return float(FLOAT32.unpack(FLOAT32.pack(x))[0])


def _shortest32(match: re.Match[bytes]) -> bytes:
    """A number that is exactly a float32, as the shortest decimal giving that float32."""
    x = float(match.group(0))
    try:
        if _as_float32(x) != x or x == int(x):
            return match.group(0)
    except OverflowError:
        return match.group(0)
    for digits in range(1, 10):
        text = f"{x:.{digits}g}"
        if _as_float32(float(text)) == x:
            return text.encode()
    return match.group(0)


def float32_digits(line: bytes) -> bytes:
    """`line` with its float32 values written with a float32's digits (the what-if row)."""
    return NUMBER.sub(_shortest32, line)


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
    shorter = [b"\n".join(float32_digits(line) for line in c.split(b"\n")) for c in chunks]
    queued = sum(len(encode(c)) for c in shorter) + RECORD_OVERHEAD * len(chunks)
    rows.append(
        f"    {'zlib ' + str(LEVEL) + ', float32':<18}{queued / values:>12.2f}{text / queued:>8.2f}"
        "  (what-if: float32 values with a float32's digits)"
    )
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
