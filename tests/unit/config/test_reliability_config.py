"""Site-file sections of issue 6 (`history:`, `influx:` queue settings): errors name the line,
defaults are what docs/reliability.md says. `fgw check`'s warnings about secrets:
tests/integration/cli/test_reliability_config.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.errors import SiteError
from config.site import load_site

DEVICES = "devices:\n  - {id: d, mqtt: {topic: x}, points: {v: {topic: v}}}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text("site: {id: s}\n" + text + DEVICES)
    return path


def test_defaults(tmp_path: Path) -> None:
    site = load_site(write(tmp_path, ""))
    history = site.file.history
    assert (history.raw_window, history.aggregate_window) == (48 * 3600, 365 * 86400)
    assert history.max_mb == 1024 and site.file.influx is None
    site = load_site(write(tmp_path, "influx: {url: 'http://127.0.0.1:8086', org: o, bucket: b}\n"))
    assert site.file.influx is not None
    assert (site.file.influx.queue_max_mb, site.file.influx.batch_size) == (256, 5000)
    assert site.file.influx.flush_interval == 1.0


def test_durations_are_parsed(tmp_path: Path) -> None:
    site = load_site(
        write(tmp_path, "history: {raw_window: 2h, aggregate_window: 30d, max_mb: 64}\n")
    )
    assert (site.file.history.raw_window, site.file.history.aggregate_window) == (7200, 30 * 86400)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("history:\n  raw_window: 30s\n", "site.yaml:2: history: raw_window must be at least 1m"),
        (
            "history: {raw_window: 10d, aggregate_window: 2d}\n",
            "site.yaml:2: history: aggregate_window must be at least as long as raw_window",
        ),
        ("history:\n  max_mb: 0\n", "site.yaml:3: history.max_mb: must be >= 1"),
        ("history:\n  raw_windo: 2h\n", "site.yaml:3: history.raw_windo: unknown field"),
        (
            "influx:\n  url: 'http://h:8086'\n  org: o\n  bucket: b\n  batch_size: 0\n",
            "site.yaml:6: influx.batch_size: must be >= 1",
        ),
        (
            "influx:\n  url: 'h:8086'\n  org: o\n  bucket: b\n",
            "site.yaml:3: influx.url: url must start with http:// or https://",
        ),
        (
            "influx: {url: 'http://h', org: o, bucket: b, flush_interval: soon}\n",
            "site.yaml:2: influx.flush_interval: not a duration",
        ),
    ],
)
def test_errors_name_the_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(SiteError) as info:
        load_site(write(tmp_path, text))
    assert any(expected in str(issue) for issue in info.value.issues), info.value


def test_secret_warnings(tmp_path: Path) -> None:
    (tmp_path / "mqtt.pass").write_text("s3cret\n")
    os.chmod(tmp_path / "mqtt.pass", 0o644)
    (tmp_path / "influx.token").write_text("t0ken\n")
    os.chmod(tmp_path / "influx.token", 0o600)
    path = write(
        tmp_path,
        "mqtt:\n  host: broker.example\n  username: gw\n  password_file: mqtt.pass\n"
        "influx: {url: 'http://influx.example:8086', org: o, bucket: b, token_file: influx.token}\n",
    )
    warnings = [str(w) for w in load_site(path).warnings]
    assert any(":5: mqtt.password_file: warning: " in w and "chmod 600" in w for w in warnings)
    assert any("password travels in clear" in w for w in warnings)
    assert any(
        ":6: influx.url: warning: the InfluxDB token travels in clear" in w for w in warnings
    )
    assert not any("influx.token_file" in w for w in warnings)  # 0600 is right
    assert all("s3cret" not in w and "t0ken" not in w for w in warnings)
