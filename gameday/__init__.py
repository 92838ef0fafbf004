"""gameday: chaos game days and runbook automation for incident response.

Flow: ``cli`` → ``game`` → stage modules (``sandbox``, ``traffic``, ``chaos``,
``detection``, ``incident``, ``runbook``, ``scoring``, ``review``) → ``store``.
"""

__version__ = "0.1.0"
