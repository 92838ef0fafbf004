"""The command line: Click commands that parse and present, nothing more."""
