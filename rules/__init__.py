"""Rules and alarms: the pure core between readings and outputs (no I/O, no clocks).

`engine` turns readings into condition changes (root causes in `suppression`, delays across
restarts in `timers`); `alarms` runs the ISA-18.2 alarm state machine over those changes (its data
in `alarm_model`). Rule conditions are parsed by `ground.expr`.
"""
