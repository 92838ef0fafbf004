"""A game day's stages: chaos, detection, the simulated responders, scoring, the verdict, the
review."""
