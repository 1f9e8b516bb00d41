"""`fgw demo --fresh`: a clean start clears what earlier demos stored, and nothing else."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.site import load_site
from gateway.cli import build_parser
from gateway.commands.failures import CommandFailure
from gateway.demo import EXAMPLE, clear_demo_state, write_demo_site
from gateway.storage.tickets import Change, TicketStore
from rules.maintenance import ServiceTargets, new_ticket


def test_fresh_clears_the_earlier_demo_tickets_and_login(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    workdir.mkdir()
    site = load_site(write_demo_site(EXAMPLE, workdir, 1883))
    assert site.storage_dir == (workdir / "state").resolve()
    store = TicketStore(site.storage_dir)
    ticket, entry = new_ticket(
        kind="corrective", device="pump-1", title="dry", urgency="urgent", at=1.8e9, by="system",
        targets=ServiceTargets(ZoneInfo("Asia/Shanghai")), origin={"kind": "manual"},
    )  # fmt: skip
    store.commit(Change(tickets=[(ticket, [entry])]), 1.8e9)
    store.close()
    (workdir / "demo-login.txt").write_text("secret\n")
    (workdir / "notes.txt").write_text("mine")

    removed = clear_demo_state(workdir)

    assert set(removed) == {workdir / "state", workdir / "demo-login.txt"}
    assert (workdir / "notes.txt").exists() and (workdir / "site.yaml").exists()
    assert clear_demo_state(workdir) == []  # again: nothing left to clear
    store = TicketStore(site.storage_dir)
    try:
        assert store.tickets() == []
    finally:
        store.close()


def test_fresh_refuses_a_folder_the_demo_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("site: {id: production}\n")
    (tmp_path / "state").mkdir()
    with pytest.raises(CommandFailure, match="not written by `fgw demo`"):
        clear_demo_state(tmp_path)
    assert (tmp_path / "state").exists()


def test_demo_takes_fresh() -> None:
    args = build_parser().parse_args(["demo", "--fresh", "--workdir", "w"])
    assert args.fresh is True and args.workdir == "w"
    assert build_parser().parse_args(["demo"]).fresh is False
