"""The fire panel's first-alarm zone: the zone that went into fire first, as the panel shows it."""

from __future__ import annotations

from simulators.fire import FirePanelSimulator


def test_first_zone_is_the_first_fire_and_clears_with_it() -> None:
    panel = FirePanelSimulator("fire-1", seed=1)
    panel.step(0.2)
    assert panel.values["first_zone"] == 0 and panel.values["zones"] == 0
    panel.inject("fire", zone=3)
    panel.inject("fire", zone=5)
    panel.step(0.2)
    assert panel.values["first_zone"] == 3
    assert panel.values["zones"] == (1 << 2) | (1 << 4) and panel.values["fire"] is True
    panel.clear()
    panel.step(0.2)
    assert panel.values["first_zone"] == 0 and panel.values["fire"] is False
