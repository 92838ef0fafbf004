"""Incidents: the incident and its timeline, the moves responders make, status updates."""
