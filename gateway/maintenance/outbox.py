"""Ticket changes: committed to SQLite first, published on `P/events` afterwards, from the rows.

Rows another process wrote (`fgw tickets transition`) are published too, and handed to `follow`
for their side effects (alarms out of service and back, a plan moving on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.components import Event
from gateway.storage.tickets import Change, StoredEntry, TicketStore

ROUNDS = 10
"""Batches of unpublished rows one `publish_pending` works through at most."""


class TicketOutbox:
    """Commit, then publish what is committed and not yet published, in order.

    Args:
        store: the ticket store (its timeline rows are the outbox).
        publish: a message for `P/events`.
        follow: side effects of a row another process committed.
    """

    def __init__(
        self,
        store: TicketStore,
        publish: Callable[[Event], None],
        follow: Callable[[StoredEntry], None],
    ) -> None:
        self.store = store
        self._publish = publish
        self._follow = follow

    def commit(self, change: Change, now: float) -> None:
        self.store.commit(change, now)
        self.publish_pending()

    def publish_pending(self) -> int:
        """Publish committed timeline rows not yet on MQTT, in order; follow other writers' rows."""
        published = 0
        for _ in range(ROUNDS):
            rows = self.store.unpublished()
            if not rows:
                break
            for row in rows:
                self._publish(ticket_event(row))
            self.store.mark_published(row.seq for row in rows)
            published += len(rows)
            for row in rows:
                if row.source != self.store.source:
                    self._follow(row)
        return published


def ticket_event(row: StoredEntry) -> dict[str, Any]:
    """`{"type": "ticket", "action": ..., "id": ..., "seq": ..., ..., "ticket": snapshot}`."""
    entry = row.entry.to_dict()
    return {
        "type": "ticket",
        "action": entry.pop("action"),
        "id": row.ticket_id,
        "seq": row.seq,
        **entry,
        "ticket": row.snapshot,
    }
