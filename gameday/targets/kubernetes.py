"""A team's own Kubernetes cluster: one gameday never creates, changes or deletes.

The scenario names the cluster by kubeconfig and context (``cluster``) and the workload
in it (``workload``). gameday reads the team's kubeconfig where it is (no copy of its
credentials goes into the run directory) and names the context everywhere rather than
trusting the kubeconfig's current one: its own clients are made for it, the Chaos
Toolkit activities get ``KUBERNETES_CONTEXT``, and a runbook for this target must say
``--context`` (``gameday.game.reach``). Faults and runbooks act only in the contexts and
namespaces the project's allowlist names (``[safety] contexts`` and ``namespaces``),
checked before anything starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.core import safety
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.spec import read_yaml
from gameday.scenarios.scenario import Scenario
from gameday.slis.traffic import Traffic
from gameday.targets.cluster import IN_CLUSTER_CONTEXT, in_cluster
from gameday.targets.team import prometheus_sli, team_pieces, team_urls_allowed

if TYPE_CHECKING:
    from collections.abc import Callable

    from gameday.core.events import Entry
    from gameday.slis.samples import SliSource
    from gameday.targets.kube import KubeWatch

REACHABLE_TIMEOUT_S = 10.0


def where(sc: Scenario) -> tuple[str, str]:
    """The kubeconfig and context a game day uses: the scenario's, or inside the
    cluster (an exported CronJob) the pod's own, as its ServiceAccount."""
    assert sc.cluster is not None
    if in_cluster():
        return os.environ.get("KUBECONFIG", ""), IN_CLUSTER_CONTEXT
    return sc.cluster["kubeconfig"], sc.cluster["context"]


def _contexts(kubeconfig: str) -> list[str]:
    doc = read_yaml(Path(kubeconfig))
    listed = doc.get("contexts") if isinstance(doc, dict) else None
    return [str(c.get("name")) for c in listed or [] if isinstance(c, dict)]


class KubernetesTarget:
    name = "kubernetes"

    def __init__(self, sc: Scenario, run_dir: Path):
        if sc.cluster is None:  # the scenario's validation requires it
            raise GamedayError("a kubernetes target needs its cluster")
        self.sc, self.cluster = sc, sc.cluster
        self.namespace, self.deployment = sc.workload["namespace"], sc.workload["deployment"]
        self.kubeconfig, self.context = where(sc)

    @property
    def env(self) -> dict[str, str]:
        """The team's kubeconfig and the context, for the activities (chaosk8s reads
        ``KUBERNETES_CONTEXT``), the runbooks and ``gameday recover`` (the lease keeps
        it); the control plane's kubectl on PATH where it was built."""
        from gameday.targets.cluster import k8s_bin

        found = {"KUBECONFIG": self.kubeconfig, "KUBERNETES_CONTEXT": self.context}
        if (k8s_bin() / "kubectl").exists():
            found["PATH"] = f"{k8s_bin()}{os.pathsep}{os.environ.get('PATH', '')}"
        return found

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def check(sc: Scenario) -> None:
        """Its context must be in the kubeconfig and on the allowlist, its workload's
        namespace on the allowlist, the team's Prometheus and Alertmanager too."""
        assert sc.cluster is not None
        file, context = str(sc.path), sc.cluster["context"]
        safety.allowed("namespaces", sc.workload["namespace"], field="workload.namespace",
                       file=file)
        team_urls_allowed(sc)
        if in_cluster():
            return  # a CronJob in the cluster: its ServiceAccount's Roles say where
        safety.allowed("contexts", context, field="cluster.context", file=file)
        try:
            found = Path(sc.cluster["kubeconfig"]).is_file()
        except OSError:
            found = False
        if not found:
            raise ValidationError(f"no such kubeconfig: {sc.cluster['kubeconfig']}",
                                  file=file, field="cluster.kubeconfig")
        known = _contexts(sc.cluster["kubeconfig"])
        if context not in known:
            raise ValidationError(f"no context {context!r} in {sc.cluster['kubeconfig']} "
                                  f"(it has: {', '.join(known) or 'none'})", file=file,
                                  field="cluster.context")

    @staticmethod
    def pieces(sc: Scenario, experiment: dict[str, Any]) -> list[tuple[str, bool, str]]:
        """The API server and the workload in it, then the team's Prometheus and
        Alertmanager."""
        assert sc.cluster is not None
        target = KubernetesTarget(sc, Path())
        try:
            found = target._workload()
            checks = [("Kubernetes API", True, f"{found['server']} ({sc.cluster['context']})"),
                      (f"Deployment {target.namespace}/{target.deployment}", True,
                       f"{found['available']}/{found['replicas']} available")]
        except GamedayError as exc:
            checks = [("Kubernetes API", False, str(exc))]
        return checks + team_pieces(sc, experiment)

    def _workload(self) -> dict[str, Any]:
        """The API server's address and the workload's replicas, or GamedayError."""
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException

        try:
            api = config.new_client_from_config(config_file=self.kubeconfig,
                                                context=self.context)
            found = client.AppsV1Api(api).read_namespaced_deployment(
                self.deployment, self.namespace, _request_timeout=REACHABLE_TIMEOUT_S)
        except ApiException as exc:
            raise GamedayError(f"Deployment {self.namespace}/{self.deployment} in context "
                               f"{self.cluster['context']}: {exc.status} {exc.reason}") \
                from None
        except Exception as exc:  # unreachable, refused, a kubeconfig it cannot use
            raise GamedayError(f"the Kubernetes API of context {self.cluster['context']} "
                               f"does not answer: {str(exc)[:300]}") from None
        status = found.status
        return {"server": api.configuration.host,
                "replicas": (status.replicas if status else 0) or 0,
                "available": (status.available_replicas if status else 0) or 0}

    def up(self) -> dict[str, Any]:
        """Nothing is created: the API server must answer and the workload be there."""
        found = self._workload()
        return {"context": self.cluster["context"], "server": found["server"],
                "workload": f"{self.namespace}/{self.deployment}",
                "available": found["available"]}

    def sampler(self, samples_path: Path) -> SliSource:
        """The team's Prometheus, synthetic traffic to the URL the team gives, or the
        Deployment's available replicas as the API server reports them."""
        sc = self.sc
        if sc.sli.get("source") == "prometheus":
            return prometheus_sli(sc, samples_path)
        if sc.traffic_url is not None:
            return Traffic(sc.traffic_url, sc.traffic_rate, sc.traffic_timeout_s,
                           samples_path)
        from gameday.targets.kube import KubeSampler

        return KubeSampler(Path(self.kubeconfig), self.namespace, self.deployment,
                           samples_path=samples_path, context=self.context)

    def state(self) -> dict[str, Any]:
        return {}

    def labels(self) -> dict[str, str]:
        return {"context": self.context}

    def watch(self, run_dir: Path, record: Callable[[Entry], object]) -> KubeWatch:
        """Kubernetes events on the incident, replica counts in ``k8s.jsonl``."""
        from gameday.targets.kube import KubeWatch

        watch = KubeWatch(Path(self.kubeconfig), self.namespace, self.deployment, record,
                          run_dir / "k8s.jsonl", context=self.context)
        watch.start()
        return watch

    def down(self) -> None:
        return None  # the team's cluster keeps running

    @staticmethod
    def release(run_dir: Path, name: str) -> None:
        return None  # after a crash too: only the faults are rolled back
