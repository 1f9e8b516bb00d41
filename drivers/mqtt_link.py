"""One MQTT connection on the event loop: paho-mqtt speaks the protocol, asyncio watches the socket.

    async with MqttLink(broker, "in", on_messages, clean_session=False) as link:
        granted = await link.subscribe([("doors/lobby/state", 1), ...])
        await link.closed()            # raises LinkError when the connection drops

Messages go from the socket to `on_messages` in batches, in the readiness callback, with nothing
queued here; `publish` writes the packet before it returns. A fresh paho client per connection.
It leans on three of paho's internals (`_sock_recv`, `_in_packet`, `_send_puback`): paho-mqtt is
pinned to 2.2.0 and tests/unit/drivers/test_paho_pin.py checks them (docs/design/mqtt.md).
Why this shape rather than aiomqtt: docs/design/mqtt-link.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from config.mqtt_settings import CALL_TIMEOUT, TCP_NODELAY, BrokerSettings
from ground.tasks import cancel_and_wait

log = logging.getLogger("drivers.mqtt")

READ_SIZE = 16 * 1024
"""Bytes asked of the socket at once: ~150 messages of 100 bytes, one TLS record at most."""

MAX_BATCH = 500
"""Messages read in one readiness callback before the loop lets the other tasks run."""

MISC_PERIOD = 1.0
"""Seconds between `loop_misc` calls: PINGREQ when due, a link without PINGRESP closed."""

Message = tuple[str, bytes, bool]
"""A received message: topic, payload, retained."""


class LinkError(Exception):
    """The broker could not be reached, refused us, timed out, or dropped the connection."""


class _BufferedClient(mqtt.Client):
    """paho's client, reading the socket `READ_SIZE` bytes at a time instead of packet by packet.

    paho asks `_sock_recv` for 1 byte, the remaining-length bytes and then the rest of each packet;
    here each ask is served from a buffer refilled by one `recv`. paho handles short reads already,
    so a packet split across two refills is read as it would be from the socket.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(READ_SIZE)  # BlockingIOError when empty, b"" at EOF
            if not buf:
                return buf
            self._rbuf, pos = buf, 0
        self._rpos = pos + bufsize
        return buf[pos : pos + bufsize]

    def read_some(self, inbox: list[Message]) -> MQTTErrorCode:
        """One step of a readiness callback: whole QoS 0/1 PUBLISH packets straight from the buffer
        (refilled from the socket when empty) into `inbox`; whatever else is there — another
        packet, one cut by the end of the buffer, the end of the stream — through paho's
        `loop_read`. Returns paho's code (success also when the socket had nothing).

        Why not paho first: `loop_read` reads at least one packet its own way, and a gateway
        hearing a device now and then gets one message per readiness — each one through paho's
        slow path (a good part of a reading's way to its alarm) if paho goes first.
        """
        if self._rpos >= len(self._rbuf) and not self._in_packet["command"]:
            try:
                data = super()._sock_recv(READ_SIZE)
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_SUCCESS  # nothing after all
            if not data:  # the broker closed the connection: paho reads the end and says so
                return self.loop_read()
            self._rbuf, self._rpos = data, 0
        self.take_publishes(inbox)
        if self.buffered() or self._in_packet["command"]:
            return self.loop_read()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def take_publishes(self, inbox: list[Message]) -> None:
        """Move the complete QoS 0/1 PUBLISH packets at the head of the buffer into `inbox`.

        Stops at the first packet that is anything else, or not all there yet: `loop_read` (paho)
        reads that one. Only between packets: paho may be halfway through one of its own.
        """
        if self._in_packet["command"]:
            return
        buf, pos = self._rbuf, self._rpos
        while pos < len(buf):
            packet = split_publish(buf, pos)
            if packet is None:
                break
            pos, topic, payload, retain, mid = packet
            inbox.append((topic, payload, retain))
            if mid is not None:  # QoS 1: acknowledged once handed over, as paho does
                self._send_puback(mid)
        self._rpos = pos

    def buffered(self) -> bool:
        """Bytes received but not yet parsed (here, or decrypted inside the TLS socket)."""
        if self._rpos < len(self._rbuf):
            return True
        pending = getattr(self.socket(), "pending", None)
        return bool(pending is not None and pending())


class MqttLink:
    """One connection to the broker, driven by the running loop (see the module docstring).

    Args:
        broker: host, credentials, TLS and client id base.
        role: appended to the client id (`{client_id_base}-{role}`).
        on_messages: called with every batch of received messages, in order, on the loop. It must
            not raise (an exception is logged, the messages are lost, the link lives on).
        clean_session: False keeps the broker's session (and its queue) across connections.
        timeout: seconds to wait for the TCP/TLS connection, CONNACK and SUBACK.
        name: the owner's name, for the keepalive task's name.
        will: the last will (topic, payload, QoS, retain) the broker says if we vanish.
        on_published: called on the loop with each publish's packet id once it is done (PUBACK
            for QoS 1, written for QoS 0). It must not raise.
    """

    def __init__(
        self,
        broker: BrokerSettings,
        role: str,
        on_messages: Callable[[list[Message]], None],
        *,
        clean_session: bool = True,
        timeout: float = CALL_TIMEOUT,
        name: str = "fgw[mqtt]",
        will: tuple[str, bytes, int, bool] | None = None,
        on_published: Callable[[int], None] | None = None,
    ) -> None:
        self.broker = broker
        self.name = name
        self.timeout = timeout
        self._on_messages = on_messages
        client = _BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=f"{broker.client_id_base}-{role}",
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        if broker.username is not None:
            password = broker.password.reveal() if broker.password is not None else None
            client.username_pw_set(broker.username, password)
        if broker.tls is not None:
            client.tls_set_context(broker.tls)
        if will is not None:
            topic, payload, qos, retain = will
            client.will_set(topic, payload, qos=qos, retain=retain)
        client.max_inflight_messages_set(0)  # no limit: the owner keeps its own window, in order
        client.connect_timeout = timeout
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        if on_published is not None:
            client.on_publish = lambda _c, _u, mid, _rc, _p: on_published(mid)
        self._client = client
        self._writing_now = False  # `publish` writes itself: no writer to register meanwhile
        self._inbox: list[Message] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1
        self._connack: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._misc: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        loop = self._loop = asyncio.get_running_loop()
        self._connack, self._lost = loop.create_future(), loop.create_future()
        client = self._client
        # connect() blocks (TCP connect, TLS handshake; CONNECT is sent by it): in a thread
        connecting = loop.run_in_executor(
            None, client.connect, self.broker.host, self.broker.port, self.broker.keepalive
        )
        try:
            await asyncio.shield(connecting)
        except asyncio.CancelledError:  # the thread goes on: close what it opens, once it is done
            connecting.add_done_callback(self._connected_too_late)
            raise
        except (OSError, ValueError) as exc:  # refused, unreachable, certificate, name
            self._close_socket()
            raise LinkError(str(exc) or type(exc).__name__) from None
        try:
            sock = client.socket()
            if sock is None:
                raise LinkError("the connection closed while connecting")
            self._fd = sock.fileno()
            client.on_socket_close = self._socket_closed
            client.on_socket_register_write = self._register_write
            client.on_socket_unregister_write = self._unregister_write
            loop.add_reader(self._fd, self._readable)
            if client.want_write():
                loop.add_writer(self._fd, self._writable)
            self._misc = loop.create_task(self._keepalive(), name=f"{self.name}.keepalive")
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(self._connack)
            except TimeoutError:
                raise LinkError(f"no CONNACK within {self.timeout:g} s") from None
        except BaseException:
            await self._shutdown(graceful=False)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown(graceful=True)

    async def subscribe(self, topics: Sequence[tuple[str, int]]) -> list[ReasonCode]:
        """Subscribe to `topics` (topic, QoS) in one SUBSCRIBE; the broker's granted codes.

        Raises:
            LinkError: no SUBACK within the timeout, or the connection dropped.
        """
        if not topics:
            return []
        assert self._loop is not None and self._lost is not None
        rc, mid = self._client.subscribe(list(topics))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise LinkError(f"subscribe: {mqtt.error_string(rc)}")
        suback: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subacks[mid] = suback
        waiting: list[asyncio.Future[Any]] = [suback, self._lost]
        try:
            async with asyncio.timeout(self.timeout):
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            raise LinkError(f"no SUBACK within {self.timeout:g} s") from None
        finally:
            self._subacks.pop(mid, None)
        if not suback.done():
            await self.closed()
            raise LinkError("the connection closed while subscribing")
        return suback.result()

    async def closed(self) -> None:
        """Wait until the connection ends: return after our own disconnect, else raise LinkError."""
        assert self._lost is not None
        await asyncio.shield(self._lost)

    @property
    def is_closed(self) -> bool:
        """The connection has ended (or never opened): `closed()` would not wait."""
        return self._lost is None or self._lost.done()

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the loop) once the connection ends, however it ends."""
        assert self._lost is not None
        self._lost.add_done_callback(lambda _future: callback())

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> int:
        """Send one PUBLISH now; returns its packet id (what `on_published` will be called with).

        The packet is written to the socket before this returns (the rest, if the socket is full,
        as soon as it drains), so the message leaves in the caller's own loop turn.

        Raises:
            LinkError: the connection is closed (or paho refused the message).
        """
        client = self._client
        if self._fd < 0:
            raise LinkError("the connection is closed")
        self._writing_now = True
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain)
        finally:
            self._writing_now = False
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkError(f"publish: {mqtt.error_string(info.rc)}")
        if client.want_write():
            self._writable()
            if self._fd >= 0 and client.want_write():  # the socket is full: the rest when it drains
                assert self._loop is not None
                self._loop.add_writer(self._fd, self._writable)
        return info.mid

    async def wait_for(self, future: asyncio.Future[Any]) -> None:
        """Wait for `future` unless the connection ends first (then raise LinkError)."""
        assert self._lost is not None
        await asyncio.wait([future, self._lost], return_when=asyncio.FIRST_COMPLETED)
        if not future.done():
            await self.closed()
            raise LinkError("the connection closed")

    # ------------------------------------------------------------------------------ the socket

    def _readable(self) -> None:
        if self._fd < 0:  # closed since this call was scheduled
            return
        client, inbox = self._client, self._inbox
        try:
            for _ in range(MAX_BATCH):
                rc = client.read_some(inbox)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self._fail(LinkError(mqtt.error_string(rc)))
                    break
                if not client.buffered():
                    break
                if len(inbox) >= MAX_BATCH:
                    self._more()
                    break
            else:
                self._more()
        except Exception as exc:  # a broken pipe, a TLS error: the link is dead, not the loop
            self._fail(LinkError(str(exc) or type(exc).__name__))
            self._close_socket()
        if self._inbox:
            batch, self._inbox = self._inbox, []
            try:
                self._on_messages(batch)
            except Exception:
                log.exception("the MQTT message handler failed (%d messages lost)", len(batch))
        if self._fd >= 0 and client.want_write():
            self._writable()  # the batch's PUBACKs now, not an iteration later (the rest if full)

    def _more(self) -> None:
        """More is buffered than the socket will signal: read it after the other tasks had a turn."""
        assert self._loop is not None
        self._loop.call_soon(self._readable)

    def _writable(self) -> None:
        try:
            rc = self._client.loop_write()
        except Exception as exc:
            rc, reason = MQTTErrorCode.MQTT_ERR_CONN_LOST, str(exc) or type(exc).__name__
        else:
            reason = mqtt.error_string(rc)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._fail(LinkError(reason))
            self._close_socket()

    def _register_write(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        if self._loop is not None and self._fd >= 0 and not self._writing_now:
            self._loop.add_writer(self._fd, self._writable)

    def _unregister_write(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_writer(self._fd)

    def _socket_closed(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        """paho is closing the socket: stop watching its descriptor first (it may be reused)."""
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = -1
        self._fail(LinkError("connection lost"))

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(MISC_PERIOD)
            try:
                rc = self._client.loop_misc()
            except Exception as exc:  # the link is dead, the task ends quietly
                self._fail(LinkError(str(exc) or type(exc).__name__))
                return
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._fail(LinkError(f"{mqtt.error_string(rc)} (no answer to keepalive)"))
                return

    # ------------------------------------------------------------------------------ paho callbacks

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # cannot match a subscription of ours
            return
        self._inbox.append((topic, bytes(message.payload), message.retain))  # bytes: no copy

    def _on_connect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if self._connack is None or self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_exception(LinkError(f"connection refused: {reason}"))
        else:
            self._connack.set_result(None)

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        code = getattr(reason, "value", reason)
        self._fail(None if code == 0 else LinkError(f"connection lost: {reason}"))

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, codes: list[ReasonCode], _props: Any
    ) -> None:
        suback = self._subacks.get(mid)
        if suback is not None and not suback.done():
            suback.set_result(codes)

    # ------------------------------------------------------------------------------ ending

    def _fail(self, error: LinkError | None) -> None:
        """The connection is over: wake whoever waits (CONNACK, SUBACK, `closed()`)."""
        connack, lost = self._connack, self._lost
        if connack is not None and not connack.done():
            connack.set_exception(error or LinkError("connection closed"))
        if lost is not None and not lost.done():
            if error is None:
                lost.set_result(None)
            else:
                lost.set_exception(error)
                lost.exception()  # `closed()` re-raises it; nobody asking is no loose end

    async def _shutdown(self, *, graceful: bool) -> None:
        if self._misc is not None:
            await cancel_and_wait([self._misc])
        client = self._client
        # from here paho writes directly (no writer callback): DISCONNECT goes out now, or never
        client.on_socket_register_write = None
        client.on_socket_unregister_write = None
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_writer(self._fd)
        if graceful and client.socket() is not None:
            with contextlib.suppress(Exception):
                client.disconnect()
        self._close_socket()
        self._fail(None)
        for future in (self._connack, self._lost):
            if future is not None and future.done() and not future.cancelled():
                future.exception()  # retrieved: no "exception was never retrieved" at exit

    def _connected_too_late(self, connecting: asyncio.Future[Any]) -> None:
        if not connecting.cancelled():
            connecting.exception()  # retrieved: nobody waits for it any more
        self._close_socket()

    def _close_socket(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = -1
        sock = self._client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def split_publish(buf: bytes, pos: int) -> tuple[int, str, bytes, bool, int | None] | None:
    """The QoS 0/1 PUBLISH packet that starts at `buf[pos]`, if it is all there and well formed.

    Returns:
        (end, topic, payload, retain, packet id — None for QoS 0), or None for anything else
        (another packet type, QoS 2, incomplete, malformed): paho reads those.
    """
    header = buf[pos]
    if header & 0xF0 != 0x30 or header & 0x06 > 0x02:  # not PUBLISH, or QoS 2 (or 3)
        return None
    length = shift = 0
    i = pos + 1
    while True:  # remaining length: 1 to 4 bytes of 7 bits, least significant first
        if i >= len(buf) or shift > 21:
            return None
        byte = buf[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    end = i + length
    qos1 = bool(header & 0x02)
    if end > len(buf) or length < 2:
        return None
    start = i + 2 + ((buf[i] << 8) | buf[i + 1])
    if start == i + 2 or start + 2 * qos1 > end:  # an empty topic, or longer than the packet
        return None
    try:
        topic = buf[i + 2 : start].decode("utf-8")
    except UnicodeDecodeError:
        return None
    mid = None
    if qos1:
        mid = (buf[start] << 8) | buf[start + 1]
        start += 2
    return end, topic, buf[start:end], bool(header & 0x01), mid


def _no_delay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    """Every socket paho opens: no Nagle delay (the first small messages would wait for an ACK)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(*TCP_NODELAY)
