"""Incidents and people: the state machine, moves, identities, four eyes."""
