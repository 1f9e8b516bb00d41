"""Stopping tasks for sure.

Cancelling a task once is not always enough on Python 3.11: `asyncio.wait_for` — used inside
pymodbus and aiomqtt for every request and publish — drops a cancellation that arrives as its
awaited result does (gh-86296, fixed in 3.12). Such a task runs on as if nothing happened, and the
`TaskGroup` that waits for it hangs the shutdown. `cancel_and_wait` cancels again until every task
has really ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

RETRY_SECONDS = 0.5
"""How long to wait for the tasks to end before cancelling the ones still running again."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel `tasks` and wait until all are done, re-cancelling those that swallowed it."""
    pending = [task for task in tasks if not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=RETRY_SECONDS)
        pending = [task for task in pending if not task.done()]
