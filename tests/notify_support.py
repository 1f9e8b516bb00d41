"""A loopback chat-robot server for tests: checks each maker's documented body and signature.

One `RobotReceiver` answers as WeCom, DingTalk or Feishu do (`kind`): HTTP 200 with
`{"errcode": 0}` / `{"code": 0}` when the request is right, an error code when the body or the
signature is wrong, and whatever the test scripts (`fail_with`) for a while: an HTTP status such
as 503, or a robot error such as `{"errcode": 310000}` (DingTalk's "keywords not in content").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OK = {"wecom": {"errcode": 0, "errmsg": "ok"}, "dingtalk": {"errcode": 0, "errmsg": "ok"},
      "feishu": {"code": 0, "msg": "success", "data": {}}}  # fmt: skip


@dataclass
class RobotReceiver:
    """What the robot received (accepted and refused), and how it answers next."""

    kind: str
    secret: str | None = None
    port: int = 0
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why each refused request was refused
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    down: bool = False  # answer 503 to everything (an outage) until set back
    attempts: int = 0
    accepted_at: list[float] = field(default_factory=list)  # time.time() of each accepted one
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        paths = {"wecom": "/cgi-bin/webhook/send?key=k-123", "dingtalk": "/robot/send?access_token=t-123",
                 "feishu": "/open-apis/bot/v2/hook/h-123"}  # fmt: skip
        return f"http://127.0.0.1:{self.port}{paths[self.kind]}"

    def fail_with(
        self, times: int, status: int = 200, answer: dict[str, Any] | None = None
    ) -> None:
        """The next `times` requests get `status` and `answer` (default: the robot's own error)."""
        with self.lock:
            self.failures.extend([(status, answer or {})] * times)

    def answer(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        why = self.check(path, body)
        with self.lock:
            self.attempts += 1
            if self.down:
                return 503, {}
            if why:
                self.refused.append(why)
                code = {"wecom": 93000, "dingtalk": 310000, "feishu": 19021}[self.kind]
                key = "code" if self.kind == "feishu" else "errcode"
                return 200, {key: code, "msg" if self.kind == "feishu" else "errmsg": why}
            if self.failures:
                return self.failures.pop(0)
            self.accepted.append(body)
            self.accepted_at.append(time.time())
            return 200, OK[self.kind]

    def check(self, path: str, body: Any) -> str:
        """Why a request is not what the maker documents ("" when it is)."""
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        if not isinstance(body, dict):
            return "body is not a JSON object"
        if self.kind == "wecom":
            if query.get("key") != ["k-123"]:
                return "wrong key"
            kind = body.get("msgtype")
            if kind not in ("text", "markdown") or not isinstance(body.get(kind), dict):
                return "msgtype"
            content = body[kind].get("content")
            limit = 2048 if kind == "text" else 4096
            if not isinstance(content, str) or len(content.encode()) > limit:
                return "content missing or too long"
            return ""
        if self.kind == "dingtalk":
            if query.get("access_token") != ["t-123"]:
                return "wrong access_token"
            if self.secret is not None:
                ts, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
                if not ts.isdigit() or abs(int(ts) - time.time() * 1000) > 3_600_000:
                    return "timestamp (ms) missing or more than an hour off"
                mac = hmac.new(
                    self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256
                )
                if sign != base64.b64encode(mac.digest()).decode():
                    return "sign mismatch"
            kind = body.get("msgtype")
            if kind == "text" and isinstance(body.get("text", {}).get("content"), str):
                return ""
            if kind == "markdown" and {"title", "text"} <= set(body.get("markdown", {})):
                return ""
            return "msgtype"
        if self.secret is not None:
            ts, sign = body.get("timestamp"), body.get("sign")
            if not isinstance(ts, str) or not ts.isdigit() or abs(int(ts) - time.time()) > 3600:
                return "timestamp (s) missing or more than an hour off"
            key = f"{ts}\n{self.secret}".encode()
            if sign != base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode():
                return "sign mismatch"
        kind = body.get("msg_type")
        content = body.get("content")
        if kind == "text" and isinstance(content, dict) and isinstance(content.get("text"), str):
            return ""
        if kind == "post" and isinstance(content, dict) and "zh_cn" in content.get("post", {}):
            return ""
        return "msg_type"


@contextmanager
def robot_receiver(kind: str, secret: str | None = None) -> Iterator[RobotReceiver]:
    """A `RobotReceiver` on a free loopback port, served by a thread."""
    robot = RobotReceiver(kind, secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's name
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                body = None
            status, answer = robot.answer(self.path, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    robot.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name=f"robot-{kind}", daemon=True)
    thread.start()
    try:
        yield robot
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
