"""The process around the gateway: stdio, logs, crash records, lifecycle, composition."""
