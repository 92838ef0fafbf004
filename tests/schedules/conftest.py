"""Scheduled game days: calendars, guardrails, the scheduler, CronJob export."""
