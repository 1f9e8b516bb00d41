"""The HTTP API and web console (PRODUCT §7): `create_app(context, capabilities)` and the component
serving it.

`create_app` is imported on first use, not with the package: the console component lives here too
and is built before the first poll, while FastAPI (a costly import, docs/performance.md) is needed
only once the console starts serving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from gateway.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
