"""`fgw check` prints the site file's warnings about secrets (TLS off with a password), as a process.

The `history:` and `influx:` sections: tests/unit/config/test_reliability_config.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.config.test_reliability_config import write


def test_tls_warnings_and_fgw_check_prints_them(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  host: 127.0.0.1\n  tls: {insecure: true}\n")
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "check", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "mqtt.tls: warning: tls without ca_file" in done.stderr
    assert "mqtt.tls.insecure: warning: the broker's certificate name is not checked" in done.stderr
