"""Scheduled game days: calendars, guardrails, the scheduler and CronJob export."""
