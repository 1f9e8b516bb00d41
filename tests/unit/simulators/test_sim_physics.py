"""Physics sanity and faults of each simulator, pure (no sockets), with fixed seeds.

Values are checked as a Modbus client would read them from the register image, so a fault is proven
to change the registers the template names, not only an internal attribute.
"""

from __future__ import annotations

import itertools
import math

import pytest

from simulators.base import InjectError, StaticSimulator
from simulators.door import AccessDoorSimulator
from simulators.fire import FirePanelSimulator
from simulators.lift import LiftSimulator
from simulators.meter import EnergyMeterSimulator
from simulators.pump import BoosterPumpSimulator
from simulators.registry import SIMULATORS
from tests.unit.simulators.test_sim_support import read

DT = 0.2


def run(sim, seconds: float, dt: float = DT) -> None:  # type: ignore[no-untyped-def]
    for _ in range(round(seconds / dt)):
        sim.step(dt)


@pytest.mark.parametrize("template", sorted(SIMULATORS))
def test_same_seed_same_physics(template: str) -> None:
    a, b = SIMULATORS[template]("x", seed=7), SIMULATORS[template]("x", seed=7)
    run(a, 120)
    run(b, 120)
    assert a.values == b.values
    assert set(a.values) == set(a.template.points)  # every template point is simulated


@pytest.mark.parametrize("template", sorted(SIMULATORS))
def test_unknown_fault_lists_the_known_ones(template: str) -> None:
    sim = SIMULATORS[template]("x", seed=1)
    with pytest.raises(InjectError) as info:
        sim.inject("meltdown")
    for name in [*sim.FAULTS, "offline", "clear"]:
        assert name in str(info.value)


@pytest.mark.parametrize("template", sorted(SIMULATORS))
def test_offline_and_clear(template: str) -> None:
    sim = SIMULATORS[template]("x", seed=1)
    sim.inject("offline")
    assert sim.offline
    sim.inject(next(iter(sim.FAULTS)))
    sim.inject("clear")
    assert not sim.offline and not sim.faults and not sim.pinned


# ---------------------------------------------------------------------------------- pump


def test_pump_cycles_on_demand_and_counts() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=3)
    starts, hours = 0, 0.0
    running_seen = stopped_seen = False
    for _ in range(round(2 * 3600 / 1.0)):
        pump.step(1.0)
        if read(pump, "running"):
            running_seen = True
            assert read(pump, "flow") >= 0.5  # a healthy pump never looks dry
            assert read(pump, "motor_current") > 3.0
        else:
            stopped_seen = True
            assert read(pump, "motor_current") == 0 and read(pump, "flow") == 0
        assert read(pump, "starts") >= starts and read(pump, "run_hours") >= hours - 0.05
        starts, hours = read(pump, "starts"), read(pump, "run_hours")
    assert running_seen and stopped_seen
    assert 1 <= starts <= 12  # cycles, but not short-cycling (≤ 6 an hour over two hours)
    assert 0.1 < hours < 2.0
    assert read(pump, "vibration") < 7.1 and not read(pump, "fault")


def test_pump_pressure_follows_running() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=1)
    pump.inject("low_pressure")  # forces a run; clear and let the controller keep it running
    pump.clear()
    run(pump, 30)
    if read(pump, "running"):
        assert abs(read(pump, "outlet_pressure") - 4.5) < 0.2


def test_pump_set_run_hours_integrates_from_there() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=1)
    pump.set("run_hours", 1999.5)
    assert read(pump, "run_hours") == pytest.approx(1999.5)
    pump.inject("dry_run")  # keeps it running
    run(pump, 360, dt=1.0)
    assert read(pump, "run_hours") == pytest.approx(1999.6, abs=0.01)
    assert "run_hours" not in pump.pinned


def test_pump_set_other_point_is_pinned_until_clear() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=1)
    pump.set("outlet_pressure", 1.25)
    run(pump, 10)
    assert read(pump, "outlet_pressure") == pytest.approx(1.25)
    pump.clear()
    run(pump, 1)
    assert read(pump, "outlet_pressure") != pytest.approx(1.25)
    with pytest.raises(InjectError, match="no point 'nope'"):
        pump.set("nope", 1)
    with pytest.raises(InjectError, match="not a number"):
        pump.set("flow", "lots")


def test_pump_trip() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=1)
    pump.inject("dry_run")
    pump.clear()
    pump.inject("trip")
    assert read(pump, "fault") and not read(pump, "running")
    run(pump, 600, dt=1.0)
    assert read(pump, "fault") and not read(pump, "running") and read(pump, "flow") == 0
    pump.inject("clear")
    assert not read(pump, "fault")


def test_pump_dry_run() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=1)
    pump.inject("dry_run")
    run(pump, 5)
    assert read(pump, "running") and read(pump, "flow") < 0.5
    assert 0 < read(pump, "motor_current") < 3.0
    assert not read(pump, "dry_run_trip")
    run(pump, 20)
    assert read(pump, "dry_run_trip") and read(pump, "running")
    assert pump.register_image()["input"][10] == 0b10  # status word: bit 1 only


def test_pump_low_pressure_and_vibration() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=1)
    pump.inject("low_pressure")
    pump.inject("vibration")
    run(pump, 15)
    assert read(pump, "running")
    assert read(pump, "outlet_pressure") < read(pump, "pressure_setpoint") - 1.5
    assert read(pump, "vibration") > 7.1


def test_pump_short_cycling() -> None:
    pump = BoosterPumpSimulator("pump-1", seed=1)
    pump.inject("short_cycling")
    run(pump, 600, dt=1.0)
    assert read(pump, "starts") >= 25  # every 20 s: far above 6 per hour


# ---------------------------------------------------------------------------------- meter


def test_meter_normal_and_energy_integrates_power() -> None:
    meter = EnergyMeterSimulator("meter-1", seed=2)
    energy = 0.0
    currents = []
    for _ in range(600):
        meter.step(1.0)
        energy += read(meter, "active_power") / 3600.0
        currents.append(read(meter, "current_l1"))
        for phase in ("l1", "l2", "l3"):
            assert 225 < read(meter, f"voltage_{phase}") < 235
        assert 0.9 < read(meter, "power_factor") < 0.96
        assert 49.9 < read(meter, "frequency") < 50.1
        assert not read(meter, "breaker_tripped")
    assert max(currents) > 2 * min(currents)  # the daily-ish load swings
    assert read(meter, "energy_import") == pytest.approx(energy, rel=0.01)
    v = meter.values
    volts_amps = sum(v[f"voltage_{p}"] * v[f"current_{p}"] for p in ("l1", "l2", "l3"))
    assert v["active_power"] == pytest.approx(volts_amps * v["power_factor"] / 1000, rel=0.01)


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        ("breaker_trip", lambda m: read(m, "breaker_tripped") and read(m, "current_l2") == 0),
        ("undervoltage", lambda m: 180 < read(m, "voltage_l1") < 190),
        ("overvoltage", lambda m: read(m, "voltage_l3") > 242),
        ("phase_loss", lambda m: read(m, "voltage_l3") < 50 and read(m, "voltage_l1") > 200),
        ("low_power_factor", lambda m: read(m, "power_factor") < 0.85),
        (
            "imbalance",
            lambda m: (
                (
                    max(read(m, f"current_{p}") for p in ("l1", "l2", "l3"))
                    - min(read(m, f"current_{p}") for p in ("l1", "l2", "l3"))
                )
                / max(read(m, f"current_{p}") for p in ("l1", "l2", "l3"))
                > 0.2
            ),
        ),
    ],
)
def test_meter_faults(fault: str, check) -> None:  # type: ignore[no-untyped-def]
    meter = EnergyMeterSimulator("meter-1", seed=2)
    run(meter, 60)
    meter.inject(fault)
    run(meter, 5)
    assert check(meter)
    meter.inject("clear")
    run(meter, 1)
    assert 225 < read(meter, "voltage_l3") < 235 and not read(meter, "breaker_tripped")


# ---------------------------------------------------------------------------------- lift


def test_lift_travels_and_counts() -> None:
    lift = LiftSimulator("lift-1", seed=4)
    floors = set()
    for _ in range(round(600 / DT)):
        lift.step(DT)
        floor = read(lift, "floor")
        assert -2 <= floor <= 18
        floors.add(floor)
        assert not (read(lift, "moving") and read(lift, "door_open"))
        assert read(lift, "direction") in ((1, 2) if read(lift, "moving") else (0,))
        assert read(lift, "in_service") and read(lift, "fault_code") == 0
    assert read(lift, "trips") >= 10
    assert read(lift, "door_cycles") == read(lift, "trips")
    assert len(floors) > 5


def test_lift_entrapment() -> None:
    lift = LiftSimulator("lift-1", seed=4)
    run(lift, 20)
    lift.inject("entrapment")
    run(lift, 60)
    assert not read(lift, "moving") and not read(lift, "door_open")
    assert read(lift, "occupied") and read(lift, "alarm_button")
    assert lift.position != round(lift.position)  # between floors
    assert lift.register_image()["input"][0] & 0b11111 == 0b11100


def test_lift_fault_and_out_of_service() -> None:
    lift = LiftSimulator("lift-1", seed=4)
    lift.inject("fault")
    assert read(lift, "fault_code") == 23
    trips = read(lift, "trips")
    run(lift, 60)
    assert read(lift, "trips") == trips and not read(lift, "moving")
    lift.inject("clear")
    lift.inject("out_of_service")
    assert not read(lift, "in_service") and read(lift, "fault_code") == 0
    lift.inject("clear")
    run(lift, 60)
    assert read(lift, "in_service") and read(lift, "trips") > trips


# ---------------------------------------------------------------------------------- fire panel


def test_fire_panel_quiet() -> None:
    panel = FirePanelSimulator("fire-1", seed=5)
    run(panel, 60)
    assert read(panel, "fire_pump_ready")
    for flag in ("fire", "fault", "supervisory", "mains_fail", "battery_low"):
        assert not read(panel, flag)
    assert read(panel, "zones") == 0
    assert read(panel, "sprinkler_pressure") == pytest.approx(0.6, abs=0.02)


def test_fire_in_zones() -> None:
    panel = FirePanelSimulator("fire-1", seed=5)
    panel.inject("fire", zone=3)
    assert read(panel, "fire") and read(panel, "zones") == 0b100
    panel.inject("fire", zone=16)
    run(panel, 1)
    assert read(panel, "zones") == 0b1000_0000_0000_0100
    with pytest.raises(InjectError, match=r"zone must be 1\.\.16"):
        panel.inject("fire", zone=17)
    with pytest.raises(InjectError, match="takes no parameters"):
        panel.inject("fault", zone=1)
    panel.inject("clear")
    assert not read(panel, "fire") and read(panel, "zones") == 0


@pytest.mark.parametrize(
    ("fault", "point", "value"),
    [
        ("fault", "fault", True),
        ("mains_fail", "mains_fail", True),
        ("battery_low", "battery_low", True),
        ("supervisory", "supervisory", True),
        ("pump_unavailable", "fire_pump_ready", False),
    ],
)
def test_fire_panel_faults(fault: str, point: str, value: bool) -> None:
    panel = FirePanelSimulator("fire-1", seed=5)
    panel.inject(fault)
    run(panel, 1)
    assert read(panel, point) is value
    assert not read(panel, "fire")


def test_sprinkler_low() -> None:
    panel = FirePanelSimulator("fire-1", seed=5)
    panel.inject("sprinkler_low")
    run(panel, 1)
    assert read(panel, "sprinkler_pressure") < 0.1


# ---------------------------------------------------------------------------------- door


def door_run(door: AccessDoorSimulator, seconds: float) -> list:  # type: ignore[type-arg]
    run(door, seconds)
    return door.take_outbox()


def test_door_normal_traffic_and_heartbeat() -> None:
    door = AccessDoorSimulator("door-lobby", seed=6)
    messages = door_run(door, 300)
    status = [m for m in messages if m.subtopic == "status"]
    assert status[0].payload == {"online": True} and all(m.retain for m in status)
    assert 29 <= len(status) <= 31  # every 10 s
    events = [m.payload for m in messages if m.subtopic == "event"]
    assert events and all(e["event"] in ("granted", "denied") for e in events)
    assert all(e["ts"].endswith("Z") and e["card"] for e in events)
    states = [m.payload["open"] for m in messages if m.subtopic == "state"]
    assert states[0] is False and True in states
    assert all(a != b for a, b in itertools.pairwise(states))  # on change only


def test_door_forced_and_held_open() -> None:
    door = AccessDoorSimulator("door-lobby", seed=6)
    door_run(door, 1)
    door.inject("forced")
    messages = door_run(door, 200)
    assert any(m.subtopic == "event" and m.payload["event"] == "forced" for m in messages)
    assert read_door(door) is True
    door.inject("clear")
    assert [m.payload for m in door_run(door, 0.2) if m.subtopic == "state"] == [{"open": False}]
    door.inject("held_open")
    door_run(door, 300)
    assert read_door(door) is True


def read_door(door: AccessDoorSimulator) -> bool:
    return bool(door.values["door_open"])


def test_door_denied_burst() -> None:
    door = AccessDoorSimulator("door-lobby", seed=6)
    door_run(door, 1)
    door.inject("denied_burst")
    messages = door_run(door, 3.2)
    denied = [m for m in messages if m.subtopic == "event" and m.payload["event"] == "denied"]
    assert len(denied) >= 5
    assert "denied_burst" not in door.faults  # a burst ends by itself


def test_door_offline_says_nothing() -> None:
    door = AccessDoorSimulator("door-lobby", seed=6)
    door_run(door, 1)
    door.inject("offline")
    door.inject("forced")
    assert door_run(door, 60) == []
    door.inject("clear")
    subtopics = {m.subtopic for m in door_run(door, 0.2)}
    assert subtopics == {"state", "status"}  # says it all again when back


def test_static_simulator_for_a_device_without_template() -> None:
    from config.models import ModbusPoint

    point = ModbusPoint.model_validate(
        {"register": "holding", "address": 0, "type": "uint16", "scale": 0.1, "range": [0, 100]}
    )
    sim = StaticSimulator("tank-1", points={"level": point})
    assert read(sim, "level") == pytest.approx(50.0)
    sim.set("level", 12.5)
    sim.step(1.0)
    assert read(sim, "level") == pytest.approx(12.5)
    assert math.isclose(sim.register_image()["holding"][0], 125)
