"""Where a game day runs: the embedded sandbox, or a Kubernetes cluster (kind, kwok).

A target comes up, offers samples for the SLIs (requests for the sandbox and kind,
Deployment status for kwok, whose pods serve nothing), gives runbooks and chaos
activities the environment they need, and goes down however the game day ends.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gameday.core.events import Entry
from gameday.scenarios.scenario import Scenario
from gameday.slis.samples import SliSource
from gameday.slis.traffic import Traffic
from gameday.targets.kubernetes import KubernetesTarget
from gameday.targets.service import ServiceTarget

if TYPE_CHECKING:
    from gameday.targets.cluster import Cluster
    from gameday.targets.kube import KubeWatch
    from gameday.targets.sandbox import SandboxClient

Record = Callable[[Entry], object]  # what it returns is ignored


class Watch(Protocol):
    def stop(self) -> None: ...


class Target(Protocol):
    """What a game day asks of the world it runs in (docs/extending.md: adding a target).
    ``env`` and ``settings`` are known before ``up`` (a crashed game day's lease records
    them, so ``gameday recover`` reaches the same world); ``down`` runs however the game
    day ends."""

    name: str

    @property
    def env(self) -> dict[str, str]:
        """The environment of the runbooks and chaos activities acting on this world."""

    @property
    def settings(self) -> dict[str, Any]:
        """Settings the chaos activities in this process see (``settings.overridden``)."""

    def up(self) -> dict[str, Any]:
        """Bring the world up (or connect to it); what it returns goes on the timeline."""

    def sampler(self, samples_path: Path) -> SliSource:
        """Where the SLIs come from, appending every sample to ``samples_path``."""

    def state(self) -> dict[str, Any]:
        """The world as it stands, for the run directory (may be empty)."""

    def labels(self) -> dict[str, str]:
        """The labels the world adds to its alerts (a cluster's context)."""

    def watch(self, run_dir: Path, record: Record) -> Watch | None:
        """Start recording what the world says about itself on the timeline (stopped
        when the game day ends), or None."""

    def down(self) -> None:
        """Take the world down (or let go of it)."""

    @staticmethod
    def release(run_dir: Path, name: str) -> None:
        """What ``gameday recover`` takes down after a crashed game day (the world named
        ``name``, whose run directory is ``run_dir``), once its faults are rolled back."""

    @staticmethod
    def check(sc: Scenario) -> None:
        """Refuse what the scenario would touch outside the project's allowlist
        (``gameday validate``, and ``gameday run`` before anything starts)."""

    @staticmethod
    def pieces(sc: Scenario, experiment: dict[str, Any]) -> list[tuple[str, bool, str]]:
        """``gameday run --preflight``: the parts of the world gameday does not start,
        each (what, whether it answers as the game day needs, where or why not)."""


class SandboxTarget:
    name = "sandbox"

    def __init__(self, sc: Scenario, run_dir: Path):
        self.sc, self.dir = sc, run_dir / "sandbox"
        self.client: SandboxClient | None = None

    def _client(self) -> SandboxClient:
        if self.client is None:
            raise RuntimeError("the sandbox target is used before up()")
        return self.client

    @property
    def env(self) -> dict[str, str]:
        return {"GAMEDAY_SANDBOX": str(self.dir)}

    @property
    def settings(self) -> dict[str, Any]:
        """What the chaos activities in this process see (``settings.overridden``)."""
        return {"sandbox_dir": self.dir}

    def up(self) -> dict[str, Any]:
        from gameday.targets.sandbox import start_sandbox

        self.client = start_sandbox(self.dir)
        return {"entrypoint": self.client.entrypoint}

    def sampler(self, samples_path: Path) -> SliSource:
        return Traffic(self._client().entrypoint, self.sc.traffic_rate,
                       self.sc.traffic_timeout_s, samples_path)

    def state(self) -> dict[str, Any]:
        return self._client().state()

    def labels(self) -> dict[str, str]:
        return target_labels(self.sc)

    def watch(self, run_dir: Path, record: Record) -> None:
        return None  # the sandbox's own events are the supervisor's, in its log

    def down(self) -> None:
        from gameday.targets.sandbox import stop_sandbox

        stop_sandbox(self.dir)

    @staticmethod
    def release(run_dir: Path, name: str) -> None:
        from gameday.targets.sandbox import stop_sandbox

        stop_sandbox(run_dir / "sandbox")

    @staticmethod
    def check(sc: Scenario) -> None:
        return None  # gameday's own world

    @staticmethod
    def pieces(sc: Scenario, experiment: dict[str, Any]) -> list[tuple[str, bool, str]]:
        return []  # it starts all of them itself


KIND_ENTRYPOINT = "http://127.0.0.1:30080/"  # the frontend's NodePort, see kind-config.yaml
# Inside the cluster (a CronJob's pod) the same frontend by its Service's name: the
# host's port mapping is not there (k8s/shop/shop.yaml).
KIND_IN_CLUSTER = "http://frontend.gameday-shop.svc:9898/"


def kind_entrypoint() -> str:
    from gameday.targets.cluster import in_cluster

    return KIND_IN_CLUSTER if in_cluster() else KIND_ENTRYPOINT


class KubeTarget:
    """A cluster. kind runs real pods: traffic through the mapped entry point gives the
    SLIs. kwok's pods serve nothing: the Deployment's status from the API server does."""

    def __init__(self, sc: Scenario, run_dir: Path):
        self.sc, self.name = sc, sc.target
        self.cluster: Cluster | None = None

    def _cluster(self) -> Cluster:
        if self.cluster is None:
            raise RuntimeError(f"the {self.name} target is used before up()")
        return self.cluster

    @property
    def env(self) -> dict[str, str]:
        """Known before the cluster exists: the lease records it before ``up()``, and a
        later ``gameday recover`` rolls back and deletes with it (which cluster, where
        its kubeconfig is), whatever the shell it runs in says."""
        from gameday.targets.cluster import cluster_name, existing, k8s_bin

        cluster = self.cluster or existing(self.sc.target)
        return {"PATH": f"{k8s_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
                "KUBECONFIG": str(cluster.kubeconfig), "GAMEDAY_CLUSTER": cluster_name()}

    def up(self) -> dict[str, Any]:
        from gameday.targets import cluster

        self.cluster = cluster.up(self.sc.target)
        return {"kubeconfig": str(self.cluster.kubeconfig), "context": self.cluster.context}

    def sampler(self, samples_path: Path) -> SliSource:
        from gameday.targets.kube import KubeSampler

        if self.sc.target == "kind":
            return Traffic(kind_entrypoint(), self.sc.traffic_rate,
                           self.sc.traffic_timeout_s, samples_path)
        workload = self.sc.workload
        return KubeSampler(self._cluster().kubeconfig, workload["namespace"],
                           workload["deployment"], samples_path=samples_path)

    def state(self) -> dict[str, Any]:
        return {}

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    def labels(self) -> dict[str, str]:
        return target_labels(self.sc)

    def watch(self, run_dir: Path, record: Record) -> KubeWatch:
        """Kubernetes events on the incident, replica counts in ``k8s.jsonl``."""
        from gameday.targets.kube import KubeWatch

        workload = self.sc.workload
        watch = KubeWatch(self._cluster().kubeconfig, workload["namespace"],
                          workload["deployment"], record, run_dir / "k8s.jsonl")
        watch.start()
        return watch

    def down(self) -> None:
        from gameday.targets import cluster

        cluster.down(self.sc.target)

    @staticmethod
    def release(run_dir: Path, name: str) -> None:
        from gameday.targets import cluster

        cluster.down(name)

    @staticmethod
    def check(sc: Scenario) -> None:
        return None  # a cluster gameday makes itself

    @staticmethod
    def pieces(sc: Scenario, experiment: dict[str, Any]) -> list[tuple[str, bool, str]]:
        return []


def target_labels(sc: Scenario) -> dict[str, str]:
    """The labels a target adds to its alerts, as a real one would: a cluster's
    kubeconfig context (known before the cluster exists, so ``validate`` checks them)."""
    if sc.target == "kubernetes" and sc.cluster is not None:
        from gameday.targets.kubernetes import where

        return {"context": where(sc)[1]}
    if sc.target not in ("kind", "kwok"):
        return {}
    from gameday.targets.cluster import existing

    return {"context": existing(sc.target).context}


# The targets a scenario's ``target`` names (``scenarios.scenario.TARGETS`` lists them
# for validation): each a class taking the scenario and the run directory.
class TargetKind(Protocol):
    """A target's class: made per game day, released by ``gameday recover``."""

    def __call__(self, sc: Scenario, run_dir: Path) -> Target: ...

    def release(self, run_dir: Path, name: str) -> None: ...

    def check(self, sc: Scenario) -> None: ...

    def pieces(self, sc: Scenario,
               experiment: dict[str, Any]) -> list[tuple[str, bool, str]]: ...


TARGETS: dict[str, TargetKind] = {
    "sandbox": SandboxTarget, "kind": KubeTarget, "kwok": KubeTarget,
    "service": ServiceTarget, "kubernetes": KubernetesTarget}


def make_target(sc: Scenario, run_dir: Path) -> Target:
    return TARGETS[sc.target](sc, run_dir)
