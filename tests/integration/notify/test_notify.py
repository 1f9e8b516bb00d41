"""Notifications for real: a local SMTP server (aiosmtpd, STARTTLS and AUTH with a generated
certificate) and a local HTTP receiver, both on free loopback ports; escalation on fake clocks.

The message and the channels' configuration: tests/unit/gateway/notify/test_notify.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config.alarm_options import ChannelConfig
from config.site import load_site
from gateway.notify.component import NotifyComponent
from gateway.notify.message import compose
from gateway.notify.smtp import EmailSender
from gateway.notify.webhook import DeliveryError, WebhookSender
from gateway.service import Gateway
from ground.model import Quality, Reading
from tests.support import free_port
from tests.unit.gateway.notify.test_notify import ALARM

WALL0 = 1_800_000_000.0


def make_ca_and_server_cert(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("fgw test CA"))
        .issuer_name(name("fgw test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Mailbox:
    """What the SMTP server received."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    tls_seen: list[bool] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.tls_seen.append(session.ssl is not None)
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox
    ca: Path


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """aiosmtpd on loopback: STARTTLS required, AUTH (fgw / s3cret) only over TLS."""
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"fgw",
            b"s3cret",
        )
        return AuthResult(success=ok)

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpServer(port, mailbox, ca)
    finally:
        controller.stop()


@dataclass
class HookReceiver:
    port: int
    requests: list[tuple[dict[str, str], Any]]
    status: list[int]  # the status to answer with (last element, default 200)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/fgw"


@pytest.fixture
def hook_receiver() -> Iterator[HookReceiver]:
    """A tiny HTTP server in a thread that records every POST."""
    received: list[tuple[dict[str, str], Any]] = []
    status = [200]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(status[-1])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="hook-receiver", daemon=True)
    thread.start()
    try:
        yield HookReceiver(server.server_address[1], received, status)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def eventually(predicate: Any, timeout: float = 10.0) -> None:
    """Await a condition that another thread makes true (the servers run in threads)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_webhook_posts_the_alarm_json_with_the_token(
    hook_receiver: HookReceiver, tmp_path: Path
) -> None:
    (tmp_path / "hook.token").write_text("tok-123\n")
    channel = ChannelConfig(
        id="ops", kind="webhook", url=hook_receiver.url, token_file="hook.token"
    )
    sender = WebhookSender(channel, tmp_path)
    assert "tok-123" not in repr(sender)
    try:
        await sender.send({"alarm": ALARM})
        headers, body = hook_receiver.requests[0]
        assert headers["authorization"] == "Bearer tok-123"
        assert headers["content-type"] == "application/json"
        assert body == {"alarm": ALARM}
        hook_receiver.status.append(503)
        with pytest.raises(DeliveryError, match="HTTP 503"):
            await sender.send({"alarm": ALARM})
    finally:
        await sender.close()
    dead = WebhookSender(
        ChannelConfig(id="x", kind="webhook", url=f"http://127.0.0.1:{free_port()}/"), tmp_path
    )
    with pytest.raises(DeliveryError):
        await dead.send({})
    await dead.close()


def email_channel(server: SmtpServer, folder: Path, **kw: Any) -> ChannelConfig:
    (folder / "smtp.pass").write_text("s3cret\n")
    options: dict[str, Any] = {
        "id": "duty", "kind": "email", "host": "127.0.0.1", "port": server.port,
        "starttls": True, "ca_file": str(server.ca), "username": "fgw",
        "password_file": "smtp.pass", "sender": "fgw@riverside.example",
        "to": ["duty@riverside.example", "chief@riverside.example"], "timeout": "5s",
    }  # fmt: skip
    options.update(kw)
    return ChannelConfig.model_validate(options)


async def test_email_over_starttls_with_auth(smtp_server: SmtpServer, tmp_path: Path) -> None:
    sender = EmailSender(email_channel(smtp_server, tmp_path), tmp_path)
    assert "s3cret" not in repr(sender)
    await sender.send(compose(ALARM, locale="zh-CN", site_name="河畔花园"))
    mailbox = smtp_server.mailbox
    assert mailbox.envelopes == [
        ("fgw@riverside.example", ["duty@riverside.example", "chief@riverside.example"])
    ]
    assert mailbox.tls_seen == [True]
    message = mailbox.messages[0]
    assert message["Subject"] == "[紧急] 河畔花园: fire-1: 火警! 第 3 防区报警"
    body = message.get_content()
    assert body.index("火警!") < body.index("FIRE! zones 4")


async def test_email_refuses_an_untrusted_server_and_a_wrong_password(
    smtp_server: SmtpServer, tmp_path: Path
) -> None:
    untrusted = EmailSender(email_channel(smtp_server, tmp_path, ca_file=None), tmp_path)
    with pytest.raises(DeliveryError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await untrusted.send(compose(ALARM, locale="en", site_name="x"))
    (tmp_path / "wrong.pass").write_text("guess")
    wrong = EmailSender(
        email_channel(smtp_server, tmp_path, password_file="wrong.pass", timeout="1s"), tmp_path
    )
    with pytest.raises(DeliveryError):
        await wrong.send(compose(ALARM, locale="en", site_name="x"))
    # no STARTTLS asked, to a server that requires it: refused, never sent in the clear
    plain = EmailSender(
        email_channel(smtp_server, tmp_path, starttls=False, username=None, password_file=None),
        tmp_path,
    )
    with pytest.raises(DeliveryError):
        await plain.send(compose(ALARM, locale="en", site_name="x"))
    assert smtp_server.mailbox.messages == []


SITE = """
site: {{id: notify-test, name: 河畔花园, locale: zh-CN}}
storage: {{path: ./state}}
mqtt: {{host: 127.0.0.1, port: {mqtt}}}
console: {{enabled: false}}
playbooks: [{{id: fire, enabled: false}}]  # escalation alone: no overdue steps announced here
modbus:
  - {{id: bus, transport: tcp, host: 127.0.0.1, port: {modbus}}}
devices:
  - {{id: fire-1, name: 消防主机, template: fire_panel, modbus: {{bus: bus, unit: 30}}}}
  - {{id: pump-1, template: booster_pump, modbus: {{bus: bus, unit: 1}}}}
notify:
  channels:
    - {{id: duty-mail, kind: email, host: 127.0.0.1, port: {smtp}, starttls: true,
       ca_file: {ca}, username: fgw, password_file: smtp.pass, sender: fgw@riverside.example,
       to: [duty@riverside.example]}}
    - {{id: ops-hook, kind: webhook, url: "{hook}"}}
  escalation:
    critical: {{after: 0s, notify: [duty-mail, ops-hook], repeat: 5m}}
    high: {{after: 10m, notify: [ops-hook]}}
"""


class Clock:
    def __init__(self) -> None:
        self.mono = 50.0

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return WALL0 + self.mono


async def test_escalation_repeats_until_acknowledged_on_real_channels(
    smtp_server: SmtpServer, hook_receiver: HookReceiver, tmp_path: Path
) -> None:
    (tmp_path / "smtp.pass").write_text("s3cret")
    path = tmp_path / "site.yaml"
    path.write_text(
        SITE.format(
            mqtt=free_port(),
            modbus=free_port(),
            smtp=smtp_server.port,
            ca=smtp_server.ca,
            hook=hook_receiver.url,
        )
    )
    clock = Clock()
    gw = Gateway(load_site(path), monotonic=clock.monotonic, wall=clock.wall)
    notify = next(c for c in gw.components if isinstance(c, NotifyComponent))
    task = asyncio.create_task(notify.run(), name="test.notify")
    mails, hooks = smtp_server.mailbox.messages, hook_receiver.requests

    def read(device: str, **values: Any) -> None:
        gw.readings([Reading(device, p, v, Quality.GOOD, clock.wall()) for p, v in values.items()])
        gw.process_queued()

    def advance(seconds: float) -> None:
        end = clock.mono + seconds
        while clock.mono < end:
            clock.mono = min(end, clock.mono + 1.0)
            gw.tick_once()

    def nothing_queued() -> bool:
        """Rows are committed synchronously by the ticks: none pending, none will be sent."""
        return all(s["pending"] == 0 for s in notify.stats()["channels"].values())

    try:
        read("fire-1", fire=True, zones=4)
        await eventually(lambda: len(mails) == 1 and len(hooks) == 1)
        assert mails[0]["Subject"].startswith("[紧急] 河畔花园: 消防主机: ")
        alarm = hooks[0][1]["alarm"]
        assert (alarm["id"], alarm["state"], alarm["episode"]) == (
            "fire-1.fire_alarm",
            "active_unack",
            1,
        )
        assert hooks[0][1]["repeat"] == 0
        read("pump-1", fault=True)  # high: only after 10 minutes unacknowledged
        advance(299.0)
        await eventually(nothing_queued)
        assert len(mails) == 1 and len(hooks) == 1
        advance(1.0)
        await eventually(lambda: len(mails) == 2 and len(hooks) == 2)
        assert hooks[1][1]["repeat"] == 1 and "(第2次提醒)" in str(mails[1]["Subject"])
        gw.acknowledge("fire-1.fire_alarm", "ann", "on my way")
        advance(300.0)  # 10 minutes: the pump's first message, and no more fire reminders
        await eventually(lambda: len(hooks) == 3)
        assert hooks[2][1]["alarm"]["id"] == "pump-1.pump_fault"
        advance(900.0)
        await eventually(nothing_queued)
        assert len(mails) == 2 and len(hooks) == 3
        assert notify.stats()["channels"]["duty-mail"]["sent"] == 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gw.close()
