"""Exports of the gateway's data to systems outside the box (InfluxDB v2), store-and-forward."""
