"""Drills: the game master, injects and scorecards of a responder training drill."""
