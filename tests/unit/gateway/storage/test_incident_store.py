"""The incident journal in SQLite (gateway/storage/incidents.py)."""

from __future__ import annotations

from pathlib import Path

from gateway.storage.incidents import IncidentStore
from rules.incidents import IncidentBook
from tests.unit.rules.test_incidents import ENTRAPMENT, T0


def test_records_journal_and_filters(tmp_path: Path) -> None:
    store = IncidentStore(tmp_path)
    book = IncidentBook({"lift_entrapment": ENTRAPMENT}, store.new_id)
    for i in range(5):
        store.commit([book.drill("lift_entrapment", None, "wang", T0 + i)])
    store.commit([book.complete_step(5, "intercom", "li", "两人", T0 + 9)])
    assert [i.id for i in store.incidents(newest=2)] == [4, 5]
    assert [i.id for i in store.incidents(since=T0 + 3)] == [4, 5]
    assert [i.id for i in store.incidents(until=T0 + 1)] == [1]
    assert store.get(5).step("intercom").done_by == "li"
    journal = store.journal(5)
    assert [(r.action, r.by, r.note) for r in journal] == [
        ("opened", "wang", ""),
        ("step_done", "li", "两人"),
    ]
    assert journal[1].event["incident"]["drill"] is True
    # a second writer (the command line) sees the same and its rows are marked as its own
    cli = IncidentStore(tmp_path, source="cli")
    assert len(cli.incidents(state="open")) == 5
    rows = store.unpublished()
    assert len(rows) == 6 and {r.source for r in rows} == {"gateway"}
    store.mark_published(r.seq for r in rows)
    assert store.unpublished() == []
    cli.close()
    store.close()
