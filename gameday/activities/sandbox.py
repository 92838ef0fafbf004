"""Chaos Toolkit actions and probes for the embedded sandbox.

Use them from any experiment with a ``python`` provider, module
``gameday.activities.sandbox``. The sandbox is found from the ``state_dir`` argument,
else the ``gameday_sandbox`` configuration key, else the project's sandbox
(``settings``: ``$GAMEDAY_SANDBOX``, else ``.gameday/sandbox`` in the project, where
``gameday sandbox up`` puts it). Every fault has its
rollback here too: restart_replica, unfreeze_replica, rollback_release,
remove_latency, set_flag.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gameday.activities.faults import fault
from gameday.core.errors import SandboxError
from gameday.targets.sandbox.client import SandboxClient

Configuration = dict[str, Any]

__all__ = [
    "kill_replica", "freeze_replica", "unfreeze_replica", "deploy_release",
    "rollback_release", "inject_latency", "remove_latency", "restart_replica", "set_flag",
    "drain_replica", "slo_met", "replicas_running",
]


def _client(state_dir: str | None, configuration: Configuration | None) -> SandboxClient:
    path = state_dir or (configuration or {}).get("gameday_sandbox")
    if not path:
        from gameday.core.settings import current

        return SandboxClient(current().sandbox_dir)
    return SandboxClient(Path(path))


# What each activity acts on (``faults``' ``acts_on``): a replica of a service, a
# service's release or its added latency, one of its flags. A rollback that restarts
# another replica, or another service's, would report success and leave the fault in.
# Which sandbox is left out: ``state_dir`` given on one side and found from the
# configuration or the settings on the other can name the same one.
Parts = list[tuple[tuple[str, Any], ...]]


def _replica(arguments: Mapping[str, Any]) -> Parts | None:
    if arguments.get("replica") is None:
        return None  # every replica of the service: it undoes any one of them
    return [(("service", arguments.get("service")), ("replica", arguments.get("replica")))]


def _service(arguments: Mapping[str, Any]) -> Parts:
    return [(("service", arguments.get("service")),)]


def _flag(arguments: Mapping[str, Any]) -> Parts:
    return [(("service", arguments.get("service")), ("name", arguments.get("name")))]


# -- actions --------------------------------------------------------------------------
@fault(local=True, rollback=("restart_replica",), acts_on=_replica,
       factor="Crashed replicas are not restarted automatically, and the router keeps "
              "sending them traffic: it has no health checks.",
       action="Add health checks to the router so a dead replica leaves rotation")
def kill_replica(service: str, replica: int = 1, state_dir: str | None = None,
                 configuration: Configuration | None = None) -> dict[str, Any]:
    """SIGKILL one replica's process: a crash. Nothing restarts it by itself."""
    return _client(state_dir, configuration).operate(
        "signal", service=service, replica=replica, signal="KILL")


@fault(local=True, rollback=("unfreeze_replica", "restart_replica"), acts_on=_replica,
       factor="The router has no outlier detection: a replica that accepts connections but "
              "never answers keeps its share of traffic.",
       action="Add passive outlier ejection and a tighter upstream timeout")
def freeze_replica(service: str, replica: int = 1, state_dir: str | None = None,
                   configuration: Configuration | None = None) -> dict[str, Any]:
    """SIGSTOP one replica: it accepts connections and never answers."""
    return _client(state_dir, configuration).operate(
        "signal", service=service, replica=replica, signal="STOP")


@fault(local=True, acts_on=_replica)
def unfreeze_replica(service: str, replica: int = 1, state_dir: str | None = None,
                     configuration: Configuration | None = None) -> dict[str, Any]:
    """SIGCONT the frozen replica (a no-op if it was restarted meanwhile)."""
    return _client(state_dir, configuration).operate(
        "signal", service=service, replica=replica, signal="CONT")


@fault(local=True, acts_on=_replica)
def restart_replica(service: str, replica: int | None = None, only_failed: bool = True,
                    state_dir: str | None = None,
                    configuration: Configuration | None = None) -> dict[str, Any]:
    """Restart one replica, or every replica of the service; by default only those that
    are not running, so the rollback is a no-op once responders fixed it."""
    return _client(state_dir, configuration).operate("restart", service=service,
                                                     replica=replica, only_failed=only_failed)


@fault(local=True, rollback=("rollback_release",), acts_on=_service,
       factor="A release reached every replica with no canary stage and no automatic "
              "rollback on error rate.",
       action="Gate rollouts on a canary's error rate with automatic rollback")
def deploy_release(service: str, version: str, state_dir: str | None = None,
                   configuration: Configuration | None = None) -> dict[str, Any]:
    """Roll out a release to every replica, one at a time."""
    return _client(state_dir, configuration).operate("deploy", service=service,
                                                     version=version)


@fault(local=True, acts_on=_service)
def rollback_release(service: str, state_dir: str | None = None,
                     configuration: Configuration | None = None) -> dict[str, Any]:
    """Roll back to the release before the current one, unless that already happened."""
    client = _client(state_dir, configuration)
    svc: dict[str, Any] = client.state()["services"][service]
    if len(svc["history"]) >= 2 and svc["history"][-1] in svc["history"][:-1]:
        return svc  # already rolled back (by a runbook, say)
    return client.operate("rollback", service=service)


@fault(local=True, rollback=("remove_latency",), acts_on=_service,
       factor="Checkout calls a non-critical dependency synchronously, with a timeout "
              "longer than its own latency objective.",
       action="Give the fraud call a timeout budget and a fallback below the SLO")
def inject_latency(service: str, ms: int, replica: int | None = None,
                   state_dir: str | None = None,
                   configuration: Configuration | None = None) -> dict[str, Any]:
    """Delay every request the service's router forwards (to one replica, or all)."""
    return _client(state_dir, configuration).operate("latency", service=service, ms=ms,
                                                     replica=replica)


@fault(local=True, acts_on=_service)
def remove_latency(service: str, state_dir: str | None = None,
                   configuration: Configuration | None = None) -> dict[str, Any]:
    return _client(state_dir, configuration).operate("latency", service=service, ms=0)


@fault(local=True, rollback=("set_flag",), acts_on=_flag)
def set_flag(service: str, name: str, value: bool, state_dir: str | None = None,
             configuration: Configuration | None = None) -> dict[str, Any]:
    return _client(state_dir, configuration).operate("flag", service=service, name=name,
                                                     value=value)


@fault(local=True, rollback=("drain_replica", "restart_replica"), acts_on=_replica)
def drain_replica(service: str, replica: int, drained: bool = True,
                  state_dir: str | None = None,
                  configuration: Configuration | None = None) -> dict[str, Any]:
    return _client(state_dir, configuration).operate("drain", service=service,
                                                     replica=replica, drained=drained)


# -- probes ---------------------------------------------------------------------------
@fault(local=True, probe=True)
def replicas_running(service: str, state_dir: str | None = None,
                     configuration: Configuration | None = None) -> int:
    svc = _client(state_dir, configuration).state()["services"][service]
    return sum(1 for r in svc["replicas"] if r["status"] == "running")


@fault(local=True, probe=True)
def slo_met(success_ratio: float = 0.99, latency_p99_ms: float = 500, window_s: float = 2.0,
            state_dir: str | None = None, configuration: Configuration | None = None) -> bool:
    """Whether the shop meets its objective: from the game day's live SLIs when one is
    running in this process, else from a burst of requests made here."""
    from gameday.slis import samples

    live = samples.LIVE
    if live is not None:
        sli = live.sli(window_s)
        if not sli.total or sli.success_ratio is None or sli.p99_ms is None:
            return False  # no samples in the window (then both SLIs are None)
        return sli.success_ratio >= success_ratio and sli.p99_ms <= latency_p99_ms
    entrypoint = _client(state_dir, configuration).entrypoint
    url = urlsplit(entrypoint)
    if not url.hostname:
        raise SandboxError(f"the sandbox's entrypoint {entrypoint!r} has no host")
    latencies, ok = [], 0
    n = max(10, int(window_s * 20))
    for _ in range(n):
        start = time.perf_counter()
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=3)
        try:
            conn.request("GET", url.path)
            ok += conn.getresponse().status == 200
        except OSError:
            pass
        finally:
            conn.close()
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(window_s / n)
    latencies.sort()
    return ok / n >= success_ratio and latencies[int(0.99 * (n - 1))] <= latency_p99_ms
