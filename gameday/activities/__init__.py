"""Chaos Toolkit activity modules shipped with gameday (actions and probes)."""
