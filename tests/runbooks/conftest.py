"""Runbooks and their runs: files, Ansible through the warm executor, worlds, alert storms."""
