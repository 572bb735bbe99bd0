"""Simulators of the upstream engines (WS2 protocol, WS4 market), for the CLI, demos and tests."""
