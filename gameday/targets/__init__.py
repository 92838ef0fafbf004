"""Targets: the worlds a game day injects faults into (sandbox, kind, kwok)."""
