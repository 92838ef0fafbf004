"""Runbooks: what a runbook file says, which alert it answers, and the executor that runs its
playbook."""
