"""The peer gateway (ThingsBoard IoT Gateway) in its own venv under the bench's work folder.

Never in the project's venv: the peer pins its own pymodbus (3.9.2) and paho. The venv is kept
between runs (`.bench/peer-venv`, or `$FGW_BENCH_WORK/peer-venv`), so only the first run installs.
Its Modbus connector pip-installs pymodbus and pyserial at first start when missing; they are
installed here beforehand so that no bench times a pip run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PEER_PACKAGE = "thingsboard-gateway>=3.8,<3.9"
PEER_PYMODBUS = "pymodbus==3.9.2"
PEER_EXTRAS = ("pyserial", "pyserial-asyncio")
"""What its Modbus connector would otherwise pip-install at its first start."""
ROOT = Path(__file__).resolve().parent.parent


class PeerUnavailable(RuntimeError):
    """The peer could not be installed or imported; the message says why."""


@dataclass(frozen=True)
class Peer:
    python: Path
    version: str
    pymodbus: str
    paho: str


def work_folder() -> Path:
    """Where the bench keeps what survives between runs (the peer venv)."""
    return Path(os.environ.get("FGW_BENCH_WORK", ROOT / ".bench")).resolve()


def _versions(python: Path) -> Peer | None:
    probe = (
        "import serial_asyncio; from importlib.metadata import version as v;"
        "print(v('thingsboard-gateway'), v('pymodbus'), v('tb-paho-mqtt-client'))"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        return None
    tb, pymodbus, paho = result.stdout.split()
    if not tb.startswith("3.8.") or pymodbus != PEER_PYMODBUS.split("==")[1]:
        return None
    return Peer(python, tb, pymodbus, paho)


def ensure_peer(folder: Path | None = None, timeout: float = 1200.0) -> Peer:
    """The peer's venv, created and installed from PyPI when missing or incomplete.

    Raises:
        PeerUnavailable: the venv could not be made, or pip could not install the peer.
    """
    venv = (folder or work_folder()) / "peer-venv"
    python = venv / "bin" / "python"
    if python.exists() and (peer := _versions(python)) is not None:
        return peer
    try:
        if not python.exists():
            venv.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True, timeout=300)  # fmt: skip
        print(f"peers: installing {PEER_PACKAGE} and {PEER_PYMODBUS} into {venv}", flush=True)
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             "--timeout", "30", "--retries", "1",
             PEER_PACKAGE, PEER_PYMODBUS, *PEER_EXTRAS],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise PeerUnavailable(f"cannot make the peer venv {venv}: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise PeerUnavailable(f"pip could not install {PEER_PACKAGE}: {tail}")
    peer = _versions(python)
    if peer is None:
        raise PeerUnavailable(f"{PEER_PACKAGE} installed into {venv} but does not import")
    return peer


def peer_env(config_dir: Path) -> dict[str, str]:
    """The environment the peer runs in: its config folder, and every HTTP(S) request it would make
    (its updater posts to the vendor's update service at each start, with no setting to turn that
    off) sent to a closed loopback port instead, so that nothing leaves the machine."""
    closed = "http://127.0.0.1:9"
    return dict(
        os.environ,
        TB_GW_CONFIG_DIR=str(config_dir),
        HTTP_PROXY=closed, HTTPS_PROXY=closed, http_proxy=closed, https_proxy=closed,
        NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
    )  # fmt: skip
