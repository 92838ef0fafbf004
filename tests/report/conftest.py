"""The report across incidents and game days."""
