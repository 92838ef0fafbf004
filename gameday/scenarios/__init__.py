"""Scenarios: what a scenario file says, its drill section included."""
