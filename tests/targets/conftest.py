"""Targets: the sandbox, kwok and kind clusters, real Prometheus and Alertmanager."""
