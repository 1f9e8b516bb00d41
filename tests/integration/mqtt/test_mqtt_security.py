"""MQTT security against a real Mosquitto with TLS (a CA and a server certificate made here with the
`cryptography` package) and a password file (`mosquitto_passwd -c -b`), as issue 6 asks:

- the right CA and credentials connect (the publisher says `online`, the driver gets readings);
- a wrong password is refused, and the log says so in one clear line;
- a server certificate from a CA the site does not trust is refused, and the log says why;
- the passwords never appear in any log record at any level, nor in reprs;
- a burst of messages over TLS reaches the driver's connection whole (its buffered reads and the
  bytes TLS decrypted ahead of them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import os
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.mqtt_settings import BrokerSettings
from config.site import load_site
from drivers.mqtt_link import Message, MqttLink
from gateway.logs import JsonFormatter
from gateway.service import Gateway
from tests.reliability_support import until
from tests.support import MOSQUITTO, free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

USER, PASSWORD, WRONG = "gateway", "S3cret-Pa55-7f1c", "Wr0ng-Pa55-93ab"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(folder: Path, cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key, now = _key(), dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (folder / f"{cn}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def make_server_cert(
    folder: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> None:
    key, now = _key(), dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    os.chmod(folder / "server.key", 0o600)


@dataclass
class SecureBroker:
    port: int
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "site-ca.pem"

    @property
    def rogue_ca(self) -> Path:
        return self.folder / "rogue-ca.pem"


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca, ca_key = make_ca(folder, "site-ca")
    make_ca(folder, "rogue-ca")
    make_server_cert(folder, ca, ca_key)
    passwd = folder / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), USER, PASSWORD], check=True, timeout=30,
        capture_output=True,
    )  # fmt: skip
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\ncafile {folder / 'site-ca.pem'}\n"
        f"certfile {folder / 'server.pem'}\nkeyfile {folder / 'server.key'}\n"
        f"password_file {passwd}\nallow_anonymous false\npersistence false\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    log = (folder / "mosquitto.log").open("ab")
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=log, stderr=log)
    log.close()
    try:
        wait_for_port(port)
        yield SecureBroker(port, folder)
    finally:
        process.terminate()
        process.wait(timeout=10)


def write_site(folder: Path, broker: SecureBroker, password: str, ca: Path) -> Path:
    (folder / "mqtt.pass").write_text(password + "\n")
    os.chmod(folder / "mqtt.pass", 0o600)
    path = folder / "site.yaml"
    path.write_text(
        f"site: {{id: sec-{uuid.uuid4().hex[:6]}}}\nstorage: {{path: ./state}}\n"
        "console: {enabled: false}\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: {broker.port}\n  username: {USER}\n"
        f"  password_file: mqtt.pass\n  tls: {{ca_file: {ca}}}\n"
        "devices:\n  - {id: tank, mqtt: {topic: tanks/t1}, points: {level: {topic: level}}}\n"
    )
    return path


def client(broker: SecureBroker, **options: object) -> aiomqtt.Client:
    context = ssl.create_default_context(cafile=str(broker.ca))
    return aiomqtt.Client(
        "127.0.0.1", broker.port, username=USER, password=PASSWORD, tls_context=context,
        identifier=f"sec-test-{free_port()}", **options,
    )  # fmt: skip


def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    formatter = JsonFormatter()
    for record in caplog.records:
        for text in (record.getMessage(), formatter.format(record), repr(record.__dict__)):
            assert PASSWORD not in text and WRONG not in text, text


async def run_for(gateway: Gateway, until_true, timeout: float) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="test.gateway")
    try:
        await until(until_true, timeout, "gateway condition")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_right_ca_and_credentials_connect_both_ways(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    site = load_site(write_site(tmp_path, secure_broker, PASSWORD, secure_broker.ca))
    settings = BrokerSettings.from_site(site)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.password)
    gateway = Gateway(site)
    driver = gateway.drivers[next(iter(gateway.drivers))]
    async with client(secure_broker) as c:
        await c.subscribe(f"{site.topic_prefix}/status", qos=1)

        async def device_speaks() -> None:
            await until(lambda: gateway.publisher.connected, 15, "publisher connected")
            for _ in range(100):
                await c.publish(f"{site.device_topic(site.devices['tank'])}/level", b"42.5", qos=1)
                if driver.stats()["tank"]["messages"]:
                    return
                await asyncio.sleep(0.1)

        speaker = asyncio.create_task(device_speaks(), name="test.device")
        await run_for(gateway, lambda: driver.stats()["tank"]["messages"] > 0, 20)
        await speaker
        statuses = []
        async with asyncio.timeout(5):
            async for message in c.messages:
                statuses.append(bytes(message.payload).decode())
                if statuses[-1] == "offline":
                    break
        assert "online" in statuses  # said over TLS, as the authenticated user
    no_secret_in_logs(caplog)


async def test_a_wrong_password_is_refused_with_a_clear_log_line(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    site = load_site(write_site(tmp_path, secure_broker, WRONG, secure_broker.ca))
    gateway = Gateway(site)

    def refused() -> bool:
        return any(
            r.levelno >= logging.WARNING and "Not authorized" in r.getMessage()
            and f"127.0.0.1:{secure_broker.port}" in r.getMessage()
            for r in caplog.records
        )  # fmt: skip

    await run_for(gateway, refused, 20)
    assert not gateway.publisher.connected
    line = next(r.getMessage() for r in caplog.records if "Not authorized" in r.getMessage())
    assert "mqtt-out" in line or "mqtt-in" in line
    no_secret_in_logs(caplog)


async def test_a_server_certificate_from_another_ca_is_refused(
    secure_broker: SecureBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    site = load_site(write_site(tmp_path, secure_broker, PASSWORD, secure_broker.rogue_ca))
    gateway = Gateway(site)

    def refused() -> bool:
        return any("certificate verify failed" in r.getMessage() for r in caplog.records)

    await run_for(gateway, refused, 20)
    assert not gateway.publisher.connected
    no_secret_in_logs(caplog)


async def test_anonymous_and_plaintext_clients_are_refused(secure_broker: SecureBroker) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", secure_broker.port, timeout=5):
            pass
    context = ssl.create_default_context(cafile=str(secure_broker.ca))
    with pytest.raises(aiomqtt.MqttError, match=r"[Nn]ot authori[sz]ed"):
        async with aiomqtt.Client("127.0.0.1", secure_broker.port, tls_context=context, timeout=5):
            pass


async def test_a_burst_over_tls_arrives_whole_and_in_order(
    secure_broker: SecureBroker, tmp_path: Path
) -> None:
    site = load_site(write_site(tmp_path, secure_broker, PASSWORD, secure_broker.ca))
    got: list[Message] = []
    arrived = asyncio.Event()

    def take(batch: list[Message]) -> None:
        got.extend(batch)
        if len(got) >= 3_000:
            arrived.set()

    async with MqttLink(BrokerSettings.from_site(site), "in", take) as link:
        await link.subscribe([("tanks/t1/level", 1)])
        async with client(secure_broker) as device:
            for n in range(3_000):  # ~300 KB: many TLS records, many buffer refills
                await device.publish("tanks/t1/level", f'{{"v": {n}, "pad": "{"x" * 60}"}}')
        await asyncio.wait_for(arrived.wait(), 30)
    assert [int(bytes(p)[6:].split(b",")[0]) for _, p, _ in got] == list(range(3_000))
