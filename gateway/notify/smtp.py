"""E-mail channel: SMTP with optional STARTTLS (or TLS from the start), via aiosmtplib.

The certificate of the server is verified (system store, or the channel's `ca_file`); a server
that offers no STARTTLS when `starttls: true` is a delivery error, never a silent fallback to
plain text with the password in it.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import aiosmtplib

from config.alarm_options import ChannelConfig
from gateway.notify.message import Message
from gateway.notify.webhook import DeliveryError, read_secret, tls_context


class EmailSender:
    """Sends one e-mail per notification to the channel's recipients."""

    def __init__(self, channel: ChannelConfig, base: Path) -> None:
        assert channel.host is not None and channel.sender is not None
        self.channel_id = channel.id
        self.host, self.port = channel.host, channel.smtp_port
        self.sender, self.to = channel.sender, list(channel.to)
        self.starttls, self.tls = channel.use_starttls, channel.tls
        self.username = channel.username
        self._password = read_secret(base, channel.password_file)
        self.timeout = channel.seconds
        self._tls = tls_context(base, channel.ca_file)

    def __repr__(self) -> str:
        return f"EmailSender({self.channel_id!r}, {self.host}:{self.port})"

    async def send(self, message: Message) -> None:
        """Deliver `message` to every recipient.

        Raises:
            DeliveryError: connection, TLS, authentication or a refused recipient.
        """
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2])
        mail.set_content(message.body)
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self._password.reveal() if self._password else None,
                use_tls=self.tls,
                start_tls=self.starttls if not self.tls else False,
                tls_context=self._tls,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
