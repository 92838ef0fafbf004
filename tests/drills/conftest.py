"""Training drills: the game master, injects, the console, scorecards."""
