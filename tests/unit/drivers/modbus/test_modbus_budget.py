"""The line budget (`drivers.modbus.budget`) and `fgw check`'s warning for a bus that cannot fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus.budget import transaction_time
from gateway.cli import main


def site_file(tmp_path: Path, devices: int, bus: str, poll: str = "1s") -> Path:
    lines = [
        "site: {id: budget, name: Budget}",
        f"storage: {{path: {tmp_path / 'var'}}}",
        "modbus:",
        f"  - {bus}",
        "devices:",
    ]
    lines += [
        f"  - {{id: m{i}, template: energy_meter, modbus: {{bus: line, unit: {i}}}, poll: {poll}}}"
        for i in range(1, devices + 1)
    ]
    path = tmp_path / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_transaction_is_its_frames_the_turnaround_and_two_gaps() -> None:
    # 8 + 25 bytes at 9600 baud, 11 bits each; 5 ms turnaround; 2 × 3.5 characters.
    assert transaction_time(8, 25, 9600, 0.005) == pytest.approx(
        33 * 11 / 9600 + 0.005 + 7 * 11 / 9600
    )
    assert transaction_time(8, 25, 19200) < transaction_time(8, 25, 9600)


RTU_OVER_TCP = "{id: line, transport: rtu-over-tcp, host: 127.0.0.1, port: 4001, baudrate: 9600}"


def test_forty_meters_at_one_second_on_9600_baud_are_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(site_file(tmp_path, 40, RTU_OVER_TCP))]) == 0  # valid, but warned
    err = capsys.readouterr().err
    assert "site.yaml:4: modbus[0].baudrate: warning: bus line: 40 devices need" in err
    assert "at 9600 baud" in err


@pytest.mark.parametrize(
    ("devices", "bus", "poll"),
    [
        (3, RTU_OVER_TCP, "1s"),
        (40, RTU_OVER_TCP, "30s"),
        (40, "{id: line, transport: tcp, host: 127.0.0.1, port: 502}", "1s"),  # Ethernet
    ],
)
def test_a_load_that_fits_or_has_no_serial_line_is_not_warned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], devices: int, bus: str, poll: str
) -> None:
    assert main(["check", str(site_file(tmp_path, devices, bus, poll))]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_tcp_converter_that_states_its_line_speed_is_budgeted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bus = "{id: line, transport: tcp, host: 127.0.0.1, port: 502, baudrate: 9600}"
    assert main(["check", str(site_file(tmp_path, 40, bus))]) == 0
    assert "9600 baud" in capsys.readouterr().err
