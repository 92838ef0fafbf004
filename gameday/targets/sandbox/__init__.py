"""The embedded sandbox: a small real shop of local HTTP services.

``supervisor`` owns the processes and routes traffic; ``service`` is one replica;
``client`` is how everything else (CLI, chaos activities, runbooks, the game) talks
to a running sandbox through its state directory.
"""

from gameday.targets.sandbox.client import SandboxClient, start_sandbox, stop_sandbox

__all__ = ["SandboxClient", "start_sandbox", "stop_sandbox"]
