"""The command line as a user types it, and the JSON Schemas it prints."""
