"""Runbook runs: a run's life on an incident's timeline, the alert intake and the run pool."""
