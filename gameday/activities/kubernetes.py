"""Chaos Toolkit actions for Kubernetes that chaostoolkit-kubernetes does not have.

Use them from an experiment with a ``python`` provider, module
``gameday.activities.kubernetes``, against the cluster in ``$KUBECONFIG`` (the same
client chaostoolkit-kubernetes builds, so secrets and contexts work the same way).

``roll_out_release`` changes a Deployment's pod template the way a deploy pipeline
does (image, arguments, resource requests) and records why in
``kubernetes.io/change-cause``, so ``kubectl rollout history`` and ``kubectl rollout
undo`` see an ordinary revision. Its rollback in an experiment is the same action with
the previous values: if a runbook has already undone the rollout, it changes nothing.
``remove_network_policy`` is a rollback that does not fail when a runbook got there
first. ``drain_nodes`` drains like a maintenance script: it cordons the nodes and evicts
what the PodDisruptionBudgets allow, once, and reports what they held back.
"""

from __future__ import annotations

from typing import Any

from gameday.activities import faults
from gameday.runbooks.kubectl import CORDON

__all__ = ["roll_out_release", "remove_network_policy", "drain_nodes"]

Secrets = dict[str, dict[str, str]]


@faults.fault(
    rbac=(faults.ns("apps", "deployments", "get", "patch"),), rollback=("roll_out_release",),
    factor="A release reached the cluster with no check that its pods can be scheduled and "
           "serve, and the rolling update gave up capacity for it.",
    action="Gate rollouts on a canary with automatic rollback, and check resource requests "
           "before they merge")
def roll_out_release(name: str, ns: str = "default", container: str | None = None,
                     image: str | None = None, args: list[str] | None = None,
                     requests: dict[str, str] | None = None, change_cause: str | None = None,
                     secrets: Secrets | None = None) -> dict[str, Any]:
    """Start a rolling update of Deployment ``name``: a new revision whose container
    (``container``, else the first) has the given image, arguments and requests. Does
    not wait for the rollout: a bad release hurts while it rolls."""
    from chaosk8s import create_k8s_api_client
    from chaoslib.exceptions import ActivityFailed
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    if image is None and args is None and requests is None:
        raise ActivityFailed("roll_out_release needs at least one of image, args, requests")
    apps = client.AppsV1Api(create_k8s_api_client(secrets))
    try:
        dep = apps.read_namespaced_deployment(name, ns)
    except ApiException as exc:
        raise ActivityFailed(f"deployment {ns}/{name}: {exc.reason}") from None
    pod_spec = dep.spec.template.spec
    if pod_spec is None:  # the API server requires one; the client types it Optional
        raise ActivityFailed(f"deployment {ns}/{name} has no pod spec")
    containers = pod_spec.containers
    target = next((c for c in containers if c.name == container), None) if container \
        else containers[0]
    if target is None:
        raise ActivityFailed(f"deployment {ns}/{name} has no container {container!r}")
    change: dict[str, Any] = {"name": target.name}
    if image is not None:
        change["image"] = image
    if args is not None:
        change["args"] = list(args)
    if requests is not None:
        change["resources"] = {"requests": dict(requests)}
    body = {
        "metadata": {"annotations": {
            "kubernetes.io/change-cause": change_cause or f"gameday: roll out {change}"}},
        "spec": {"template": {"spec": {"containers": [change]}}},
    }
    try:
        patched = apps.patch_namespaced_deployment(name, ns, body)
    except ApiException as exc:
        raise ActivityFailed(f"rolling out {ns}/{name}: {exc.reason}: {exc.body}") from None
    if patched.metadata is None:  # the API server always returns it
        raise ActivityFailed(f"rolling out {ns}/{name}: the response has no metadata")
    return {"deployment": f"{ns}/{name}", "container": target.name,
            "generation": patched.metadata.generation,
            "change": {k: v for k, v in change.items() if k != "name"}}


@faults.fault(rbac=(faults.ns("networking.k8s.io", "networkpolicies", "delete"),))
def remove_network_policy(name: str, ns: str = "default",
                          secrets: Secrets | None = None) -> dict[str, Any]:
    """Delete NetworkPolicy ``name``; one that is already gone is not an error."""
    from chaosk8s import create_k8s_api_client
    from chaoslib.exceptions import ActivityFailed
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    api = client.NetworkingV1Api(create_k8s_api_client(secrets))
    try:
        api.delete_namespaced_network_policy(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return {"policy": f"{ns}/{name}", "deleted": False}
        raise ActivityFailed(f"deleting network policy {ns}/{name}: {exc.reason}") from None
    return {"policy": f"{ns}/{name}", "deleted": True}


# evicts the pods of namespace ``ns`` only
@faults.fault(
    rbac=(*CORDON, faults.ns("", "pods", "list"), faults.ns("", "pods/eviction", "create")),
    rollback=("chaosk8s.node.actions:uncordon_node",),
    factor="Maintenance drained every node at once: the disruption budget held most "
           "replicas, but the ones it released had nowhere to run.",
    action="Drain one node at a time, waiting for its pods to be rescheduled")
def drain_nodes(label_selector: str, ns: str, secrets: Secrets | None = None
                ) -> dict[str, Any]:
    """Cordon every node matching ``label_selector``, then evict the pods of namespace
    ``ns`` on them through the Eviction API. An eviction a PodDisruptionBudget refuses
    (429) is reported, not retried: the budget did its job, and the pods it let go have
    nowhere to run until the nodes are uncordoned."""
    from chaosk8s import create_k8s_api_client
    from chaosk8s.node.actions import cordon_node
    from chaoslib.exceptions import ActivityFailed
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(create_k8s_api_client(secrets))
    nodes = cordon_node(label_selector=label_selector, secrets=secrets)
    evicted, held = [], []
    for name in nodes:
        pods = core.list_namespaced_pod(ns, field_selector=f"spec.nodeName={name}").items
        for pod in pods:
            pod_name = pod.metadata.name if pod.metadata else None
            if pod_name is None:  # the API server always names pods; the client types it Optional
                raise ActivityFailed(f"a pod of {ns} on node {name} has no name")
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod_name, namespace=ns))
            try:
                core.create_namespaced_pod_eviction(pod_name, ns, body)
            except ApiException as exc:
                if exc.status != 429:
                    raise ActivityFailed(f"evicting {ns}/{pod_name}: {exc.reason}") from None
                held.append(pod_name)
                continue
            evicted.append(pod_name)
    return {"cordoned": nodes, "evicted": evicted, "held_by_budget": held}
