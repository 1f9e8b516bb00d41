"""Rules and alarms: the pure core between readings and outputs (no I/O, no clocks).

`expr` parses rule conditions, `engine` turns readings into condition changes with timers, and
`alarms` runs the ISA-18.2 alarm state machine over those changes.
"""
