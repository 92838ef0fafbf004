"""The report: facts across incidents and game days, trends, the page and metrics."""
