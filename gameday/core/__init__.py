"""The core every feature stands on: errors, the clock, typed states, the timeline's events,
settings, the severity policy, spec helpers, rendering."""
