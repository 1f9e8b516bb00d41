"""Facility Gateway: watches building equipment over Modbus and MQTT, raises alarms and tickets."""

__version__ = "0.1.0"
