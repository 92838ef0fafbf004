"""The one exception tree of gameday.

::

    GamedayError                 exit 1 unless said otherwise
    ├── ValidationError          exit 2: bad scenario, experiment, runbook, flag or payload;
    │                            carries ``file`` and ``field``
    ├── NotFound                 exit 1: an incident, run, runbook or service that is not there
    ├── SandboxError             exit 1: the embedded sandbox could not do what was asked
    ├── RunbookError             exit 1: a runbook could not be started
    ├── AlreadyRecorded          exit 1: what happens once happened already (an inject)
    ├── StoreUnavailable         exit 1: the store cannot be reached, or lost its connection
    │                            (``gameday serve`` answers 503 with Retry-After)
    └── Frozen                   exit 4: game days are frozen (``gameday freeze on``)
        ├── RealIncidentOpen     exit 4: a real incident is open for the service a game
        │                        day would act on (its own systems)
        └── FaultMayBeIn         exit 4: another game day holds that service: it runs, or
                                 its faults are not all undone (``gameday recover``)

Stages raise these; only ``cli`` turns them into Click exceptions.
"""

from __future__ import annotations


class GamedayError(Exception):
    exit_code = 1


class ValidationError(GamedayError):
    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        self.message = message
        where = ": ".join(p for p in (file, field) if p)
        super().__init__(f"{where}: {message}" if where else message)


class NotFound(GamedayError):
    pass


class SandboxError(GamedayError):
    pass


class RunbookError(GamedayError):
    pass


class AlreadyRecorded(GamedayError):
    pass


class StoreUnavailable(GamedayError):
    pass


class Frozen(GamedayError):
    exit_code = 4


class RealIncidentOpen(Frozen):
    """Not a freeze anyone pulled, but the same guardrail: no game day starts on a
    team's own service while a real incident is open for it."""


class FaultMayBeIn(Frozen):
    """The same guardrail: no game day starts on a team's own service while another
    holds it (running, or ended with a fault its rollbacks have not undone)."""
