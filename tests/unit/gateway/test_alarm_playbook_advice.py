"""The alarm card's "what to do": the open incident's next step, else the playbook's first step,
else the rule's advice — computed by the API from a gateway on injected clocks, without a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.api.sources import alarm_view
from gateway.service import Gateway
from ground.model import Quality, Reading
from tests.unit.gateway.test_incidents_component import Clock, gateway, incidents_of, site_file


def read(gw: Gateway, clock: Clock, device: str, **values: Any) -> None:
    gw.readings([Reading(device, p, v, Quality.GOOD, clock.wall()) for p, v in values.items()])
    gw.process_queued()


def test_entrapment_links_to_its_incident_and_its_next_step(tmp_path: Path) -> None:
    clock = Clock()
    gw = gateway(site_file(tmp_path), clock)
    read(gw, clock, "lift-1", alarm_button=False, moving=False, door_open=False, occupied=False,
         in_service=True, fault_code=0, floor=3)  # fmt: skip
    view = alarm_view(gw.context, gw.capabilities, "lift-1.entrapment")
    # no incident yet: the playbook's first step
    assert view["playbook"] == {
        "id": "lift_entrapment",
        "title": {"zh": "电梯困人", "en": "Person trapped in a lift"},
        "incident": None,
        "step": {
            "zh": "通过对讲安抚被困人员并确认人数和状况",
            "en": "Talk to the passengers over the intercom (how many, how they are)",
        },
    }
    read(gw, clock, "lift-1", alarm_button=True)
    [incident] = incidents_of(gw).listing()
    view = alarm_view(gw.context, gw.capabilities, "lift-1.entrapment")
    assert view["state"] == "active_unack"
    assert view["playbook"]["incident"] == incident["id"]
    assert view["playbook"]["step"]["en"].startswith("Talk to the passengers")
    incidents_of(gw).complete_step(incident["id"], "intercom", "wang", "two people, calm")
    step = alarm_view(gw.context, gw.capabilities, "lift-1.entrapment")["playbook"]["step"]
    assert step["en"].startswith("Call the lift maintenance company")


def test_an_alarm_without_a_playbook_keeps_the_rules_advice(tmp_path: Path) -> None:
    clock = Clock()
    gw = gateway(site_file(tmp_path), clock)
    read(gw, clock, "lift-1", fault_code=7)
    view = alarm_view(gw.context, gw.capabilities, "lift-1.lift_fault")
    assert view["playbook"] is None
    assert view["advice"]["en"] == "Call the lift company with the fault code"
