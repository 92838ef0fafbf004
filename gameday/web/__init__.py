"""``gameday serve``: Alertmanager webhooks, one-click runbook pages, incident views."""
