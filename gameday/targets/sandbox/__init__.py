"""The embedded sandbox: a small real shop of local HTTP services.

``supervisor`` owns the processes and routes traffic; ``service`` is one replica;
``client`` is how everything else (CLI, chaos activities, runbooks, the game) talks
to a running sandbox through its state directory. The client is imported when first
asked for: every replica process imports this package, and needs none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gameday.targets.sandbox.client import SandboxClient, start_sandbox, stop_sandbox

__all__ = ["SandboxClient", "start_sandbox", "stop_sandbox"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gameday.targets.sandbox import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
