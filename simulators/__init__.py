"""Equipment simulators: each built-in template served on the real wire (Modbus TCP or MQTT).

The register and topic maps come from the templates themselves (`config/templates/*.yaml`); a
simulator adds only physics and faults, so the gateway and its simulators cannot drift apart.
"""
