"""A stand-in for InfluxDB's v2 write API on loopback, for benches: it accepts every write.

`POST /api/v2/write` answers 204 and counts the lines and bytes of line protocol it was sent
(gunzipped when the client compressed it); the first `keep_bytes` of text are kept, so a bench can
try the queue's codec on the very lines the gateway exported. Cheaper than VictoriaMetrics (no
storage, no indexing of its own on the bench's two cores), and it tells what arrived.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from bench.support import free_port


class InfluxSink:
    """Counts what the gateway exports; use as a context manager (serves in a thread).

    Args:
        keep_bytes: line-protocol text kept in `sample`, from the first write on.
    """

    def __init__(self, keep_bytes: int = 8 * 1024 * 1024) -> None:
        self.port = free_port()
        self.keep_bytes = keep_bytes
        self.lines = 0
        self.text_bytes = 0
        self.writes = 0
        self.sample: list[bytes] = []
        self._kept = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bench.influx-sink", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self) -> tuple[int, int]:
        """Lines and text bytes received since the last call."""
        with self._lock:
            counts = self.lines, self.text_bytes
            self.lines = self.text_bytes = 0
            return counts

    def _received(self, text: bytes) -> None:
        with self._lock:
            self.writes += 1
            self.lines += text.count(b"\n") + 1 if text else 0
            self.text_bytes += len(text)
            if self._kept < self.keep_bytes:
                self.sample.append(text)
                self._kept += len(text)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.startswith("/api/v2/write"):
                    sink._received(body)
                    self.send_response(204)
                else:
                    self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> InfluxSink:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
