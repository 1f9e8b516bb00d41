"""The history's component: every reading batch to the store, its writer thread started and stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from gateway.components import Capabilities, Component, ComponentContext, History
from ground.model import Reading

CLOSE_TIMEOUT = 10.0
"""Seconds a stop may spend writing what is buffered."""


def build(context: ComponentContext, capabilities: Capabilities) -> Component:
    """The `gateway.registry` factory: feeds the gateway's history store, runs its writer thread."""
    return HistoryRecorder(capabilities.history)


class HistoryRecorder(Component):
    """Hands every reading batch to the history store; starts and stops its writer thread."""

    name = "history"

    def __init__(self, store: History) -> None:
        self.store = store

    def on_readings(self, batch: Sequence[Reading]) -> None:
        self.store.add(batch)

    async def run(self) -> None:
        self.store.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.store.stop, CLOSE_TIMEOUT)

    def stats(self) -> dict[str, Any]:
        return self.store.stats()
