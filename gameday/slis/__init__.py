"""Service level indicators: where a game day reads them (samples, windows)."""
