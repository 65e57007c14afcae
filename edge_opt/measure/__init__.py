"""Measurement: the harness, the measurement service, records, devices and the Ray engine."""
