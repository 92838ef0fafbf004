"""chaostoolkit-kubernetes' activities as gameday knows them (``faults.declare``): the
API calls each makes (as ``kubectl -v=6`` and the library's source show them), what undoes
its faults, and what a review says when a game day injects one. Namespaced rules apply in
the namespace of the activity's ``ns`` argument (default "default")."""

from __future__ import annotations

from gameday.activities.faults import cluster, declare, ns
from gameday.runbooks.kubectl import CORDON

_LIST_DEPLOYMENTS = (ns("apps", "deployments", "list"),)
_WATCH_DEPLOYMENTS = (ns("apps", "deployments", "list", "watch"),)
_LIST_PODS = (ns("", "pods", "list"),)
_CREATE_POLICY = (ns("networking.k8s.io", "networkpolicies", "create"),)
_DELETE_POLICY = (ns("networking.k8s.io", "networkpolicies", "delete"),)

_DEPLOYMENT_PROBES = "chaosk8s.deployment.probes"
for _probe in ("deployment_available_and_healthy", "deployment_partially_available"):
    declare(_DEPLOYMENT_PROBES, _probe, rbac=_LIST_DEPLOYMENTS, probe=True)
for _probe in ("deployment_fully_available", "deployment_not_fully_available"):
    declare(_DEPLOYMENT_PROBES, _probe, rbac=_WATCH_DEPLOYMENTS, probe=True)
for _probe in ("pods_in_phase", "pods_not_in_phase", "pods_in_conditions", "count_pods",
               "count_min_pods", "pod_is_not_available", "all_pods_healthy"):
    declare("chaosk8s.pod.probes", _probe, rbac=_LIST_PODS, probe=True)
declare("chaosk8s.pod.probes", "read_pod_logs",
        rbac=(ns("", "pods", "list"), ns("", "pods/log", "get")), probe=True)
declare("chaosk8s.node.probes", "get_nodes", rbac=(cluster("", "nodes", "list"),), probe=True)

declare("chaosk8s.deployment.actions", "scale_deployment",
        rbac=(ns("apps", "deployments", "patch"),), rollback=("scale_deployment",),
        factor="Nothing guards the Deployment's replica count: automation could scale a "
               "serving Deployment to zero without a check.",
        action="Enforce a replica floor for serving Deployments (admission policy or "
               "autoscaler minimum)")
declare("chaosk8s.deployment.actions", "rollout_deployment",
        rbac=(ns("apps", "deployments", "patch"),), rollback=("rollout_deployment",))

_NETWORKING = "chaosk8s.networking.actions"
_REMOVE = (f"{_NETWORKING}:remove_network_policy",
           "gameday.activities.kubernetes:remove_network_policy")
declare(_NETWORKING, "create_network_policy", rbac=_CREATE_POLICY, rollback=_REMOVE)
declare(_NETWORKING, "deny_all_ingress", rbac=_CREATE_POLICY,
        rollback=(*_REMOVE, "remove_deny_all_ingress"),
        factor="A NetworkPolicy for the whole namespace applied with no check of the "
               "traffic it would cut.",
        action="Test NetworkPolicy changes for connectivity before they apply")
declare(_NETWORKING, "deny_all_egress", rbac=_CREATE_POLICY,
        rollback=(*_REMOVE, "remove_deny_all_egress"))
declare(_NETWORKING, "allow_dns_access", rbac=_CREATE_POLICY, rollback=_REMOVE)
for _undo in ("remove_network_policy", "remove_deny_all_ingress", "remove_deny_all_egress"):
    declare(_NETWORKING, _undo, rbac=_DELETE_POLICY)

declare("chaosk8s.node.actions", "cordon_node", rbac=CORDON, rollback=("uncordon_node",),
        factor="Maintenance tooling could cordon every node at once: nothing limits how "
               "much schedulable capacity it takes away.",
        action="Limit node maintenance to one node at a time and alert on Pending pods")
declare("chaosk8s.node.actions", "uncordon_node", rbac=CORDON)
# evicts the pods of every namespace on the nodes
declare("chaosk8s.node.actions", "drain_nodes", rollback=("uncordon_node",),
        rbac=(*CORDON, cluster("", "pods", "get", "list"),
              cluster("", "pods/eviction", "create")))
# a Deployment replaces what these delete: nothing to undo
declare("chaosk8s.pod.actions", "terminate_pods", rbac=(ns("", "pods", "delete", "list"),))
declare("chaosk8s.pod.actions", "delete_pods", rbac=(ns("", "pods", "delete", "list"),))
