"""`cancel_and_wait` ends a task that swallows its first cancellation."""

from __future__ import annotations

import asyncio

from ground.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancel_is_still_stopped() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # what asyncio.wait_for does on 3.11 when the result races the cancel
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task]), 5)
    assert swallowed.is_set() and task.cancelled()


async def test_done_tasks_and_no_tasks_are_fine() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait([done])
    await cancel_and_wait([])
