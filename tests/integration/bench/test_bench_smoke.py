"""Every bench runs, in a tiny configuration, and prints its figures beside their ceilings.

Benchmarks are run by hand (`./scripts/bench.sh`) and never asserted on: this only keeps the
scripts from rotting when the code they drive changes. Nothing here looks at a number's size.
"""

from __future__ import annotations

import re
import sys

import pytest

from bench import export, fire_latency, footprint, ingest, latency, poll, rules, wire

pytestmark = pytest.mark.integration

NUMBER = r"[\d,.]+"


def _lines(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr().out
    assert "Traceback" not in out
    return out


def test_rules(capsys: pytest.CaptureFixture[str]) -> None:
    rules.main(["--seconds", "0.2", "--repeat", "1", "--sizes", "100"])
    out = _lines(capsys)
    assert re.search(rf"^\s+100\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+\d+\s+{NUMBER}$", out, re.M), out


def test_poll(capsys: pytest.CaptureFixture[str]) -> None:
    poll.main(["--devices", "2", "--seconds", "0.3", "--repeat", "1", "--plan-points", "1000"])
    out = _lines(capsys)
    assert re.search(rf"ratio gateway/bare : {NUMBER}", out), out
    assert re.search(rf"gateway poll path\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x", out), out
    assert "plan_reads: 1,000 points" in out


def test_ingest(capsys: pytest.CaptureFixture[str]) -> None:
    ingest.main(["--doors", "5", "--messages", "300", "--repeat", "1"])
    out = _lines(capsys)
    assert re.search(rf"ratio gateway/bare paho\s+: {NUMBER}", out), out
    assert "received 300..300" in out  # the bare subscriber got every message


def test_latency(capsys: pytest.CaptureFixture[str]) -> None:
    latency.main(["--seconds", "1", "--rounds", "1", "--rate", "100"])
    out = _lines(capsys)
    assert re.search(rf"\(10 alarms\): p50 {NUMBER} ms, p99 {NUMBER} ms", out), out
    assert re.search(rf"paired \(10 alarms\): p50 {NUMBER} ms", out), out
    assert re.search(rf"after the poll \(1 rounds\): p50 {NUMBER} ms", out), out


def test_export(capsys: pytest.CaptureFixture[str]) -> None:
    export.main(["--polls", "500", "--repeat", "1"])
    out = _lines(capsys)
    assert re.search(rf"ratio gateway/bare\s+: {NUMBER}", out), out


def test_footprint(capsys: pytest.CaptureFixture[str]) -> None:
    footprint.main(["--devices", "20", "--seconds", "2", "--settle", "3"])
    out = _lines(capsys)
    assert re.search(rf"gateway CPU\s+: {NUMBER} % of one core", out), out
    # a loaded machine may see no poll within the settling time: the bench says so, no figure
    assert re.search(rf"start -> first poll\s+: ({NUMBER} s|none within the settling time)", out), (
        out
    )
    assert re.search(rf"bytes written\s+: {NUMBER} KiB/s, {NUMBER} bytes per value", out), out


def test_footprint_with_export(capsys: pytest.CaptureFixture[str]) -> None:
    footprint.main(
        ["--devices", "20", "--seconds", "3", "--settle", "3", "--readings", "off",
         "--export", "sink"]
    )  # fmt: skip
    out = _lines(capsys)
    assert "export to sink" in out, out
    assert re.search(rf"exported \(sink\)\s+: {NUMBER} lines/s", out), out
    assert re.search(rf"zlib \d \(default\)\s+{NUMBER}\s+{NUMBER}", out), out


def test_spool_levels(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import spool_levels

    spool_levels.main(["--devices", "10", "--seconds", "3"])
    out = _lines(capsys)
    assert re.search(rf"text \(before\)\s+{NUMBER}\s+1.00", out), out
    assert re.search(rf"zlib 9\s+{NUMBER}\s+{NUMBER}", out), out


def test_demo_writes(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import demo_writes

    demo_writes.main(["--seconds", "2", "--settle", "5"])
    out = _lines(capsys)
    assert re.search(rf"bytes written\s+: {NUMBER} KiB/s, {NUMBER} GB/day", out), out


def test_fire_latency(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench.fire_latency", "--rounds", "1"])
    fire_latency.main()
    out = _lines(capsys)
    assert re.search(rf"inject -> retained fire alarm: p50 {NUMBER} ms", out), out


def test_wire(capsys: pytest.CaptureFixture[str]) -> None:
    wire.main(
        ["--units", "2", "--seconds", "0.5", "--repeat", "1", "--warmup", "0", "--bauds", "19200"]
    )
    out = _lines(capsys)
    assert re.search(rf"rtu-over-tcp 19200 baud, 1 dead: +{NUMBER} polls/s of +{NUMBER}", out), out
    assert re.search(rf"gateway {NUMBER} polls/s, bare pymodbus {NUMBER} polls/s", out), out
