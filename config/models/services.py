"""The gateway's own services: site identity, storage, MQTT, InfluxDB export, the console."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from config.models.base import ID_PATTERN, Duration, Strict


class SiteInfo(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    timezone: str = "UTC"
    locale: Literal["zh-CN", "en"] = "zh-CN"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use e.g. Asia/Shanghai)") from exc
        return value


class StorageConfig(Strict):
    path: str = "./var"


class TlsConfig(Strict):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


class MqttConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password_file: str | None = None
    tls: TlsConfig | None = None
    topic_prefix: str | None = None
    device_base: str | None = None  # default: {topic_prefix}/devices; "" keeps bare device topics
    client_id: str | None = None
    keepalive: Duration = 30.0
    publish_readings: bool = False
    readings_queue_mb: float = Field(default=2.0, gt=0, le=1024)
    """Memory for readings waiting while the broker is away; the oldest go first (counted)."""

    @property
    def readings_queue_bytes(self) -> int:
        return int(self.readings_queue_mb * 2**20)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.endswith("/") or "+" in value or "#" in value):
            raise ValueError("topic_prefix must be a topic without wildcards or a trailing /")
        return value

    @field_validator("device_base")
    @classmethod
    def _device_base(cls, value: str | None) -> str | None:
        if value and (value.startswith("/") or value.endswith("/") or "+" in value or "#" in value):
            raise ValueError(
                'device_base must be a topic without wildcards or a leading or trailing / ("" for none)'
            )
        return value


class InfluxConfig(Strict):
    """InfluxDB v2 export (`gateway.export.influx`) through a disk-backed store-and-forward queue."""

    url: str
    org: str
    bucket: str
    token_file: str | None = None
    queue_max_mb: float = Field(default=256.0, ge=1)
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    flush_interval: Duration = 1.0
    timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _positive(self) -> InfluxConfig:
        if self.flush_interval <= 0 or self.timeout <= 0:
            raise ValueError("flush_interval and timeout must be positive")
        return self


class ConsoleConfig(Strict):
    """The web console and HTTP API (PRODUCT §7). Loopback by default: exposing it is a decision."""

    listen: str = "127.0.0.1:8080"
    enabled: bool = True
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    public_url: str | None = None  # how people reach the console; notifications link to it

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        host = rest.split("/", 1)[0]
        if scheme not in ("http", "https") or not sep or not host or any(c in value for c in " ?#"):
            raise ValueError("public_url must be an http:// or https:// address without ? or #")
        return value.rstrip("/")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("listen must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])
