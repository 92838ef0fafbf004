"""What a game day may reach of a team's own hosts and clusters: checked by ``gameday
validate`` and by ``gameday run`` before anything is injected."""

from __future__ import annotations

from gameday.core import safety
from gameday.core.errors import ValidationError
from gameday.core.spec import read_yaml
from gameday.runbooks.hosts import tasks_within
from gameday.runbooks.routing import route
from gameday.runbooks.runbook import Runbook
from gameday.scenarios.scenario import Scenario
from gameday.targets.base import target_labels


def within_hosts(sc: Scenario, runbook: Runbook) -> None:
    """A runbook a service's alert links acts only on the inventory's hosts that the
    allowlist names ([safety] hosts) and this one: each play's ``hosts`` pattern is
    resolved in the team's inventory. A pattern only Ansible can resolve (a template, a
    regex) is held at run time by the run's ``--limit`` to the same hosts. ``--limit``
    does not hold a task's ``delegate_to`` or hosts a task adds (``add_host``,
    ``group_by``): a delegate must be an allowlisted host by name, and adding hosts is
    refused."""
    if sc.inventory is None:
        return
    from gameday.core.settings import current
    from gameday.targets.inventory import load_inventory

    inventory = load_inventory(sc.inventory)
    allowed = set(current().safety.hosts) | {"localhost"}
    plays = read_yaml(runbook.path)
    for index, play in enumerate(plays if isinstance(plays, list) else []):
        pattern = play.get("hosts") if isinstance(play, dict) else None
        reached = inventory.resolve(pattern) if isinstance(pattern, str) else None
        outside = sorted((reached or set()) - allowed)
        if outside:
            shown = ", ".join(current().safety.hosts) or "nothing"
            raise ValidationError(
                f"hosts {pattern!r} reaches {', '.join(outside)} in the inventory "
                f"{sc.inventory}, outside the project's allowlist ([safety] hosts in "
                f"gameday.toml: {shown})", file=str(runbook.path), field=f"[{index}].hosts")
    tasks_within(runbook, allowed)  # and what --limit does not hold: delegates, added hosts


def linked_runbook_within_hosts(sc: Scenario) -> None:
    """``within_hosts`` for the runbook the scenario's alert links, if it links one
    (``gameday run``, before anything is injected)."""
    if sc.inventory is None:
        return
    found = route(sc.alert.name, {**sc.alert.labels, **target_labels(sc)},
                  sc.alert.annotations, runbook=sc.response.runbook,
                  overrides=sc.response.params)
    if found.runbook is not None:
        within_hosts(sc, found.runbook)



def within_cluster(sc: Scenario, context: str | None = None) -> None:
    """A kubernetes target's game day acts only in the allowlist's namespaces and
    contexts: gameday's own view of the workload, each fault (its ``ns``), and each
    kubectl command of the runbook its alert links (its ``--namespace`` and
    ``--context``, which it must name), as ``gameday.game.rbac`` derives them; nothing
    cluster-wide (nodes), and nothing it cannot derive. ``context``: the one the
    target's label gives [default: the scenario's, or in the cluster ``in-cluster``]."""
    if sc.target != "kubernetes" or sc.cluster is None:
        return
    from gameday.game.rbac import all_needs
    from gameday.targets.cluster import IN_CLUSTER_CONTEXT

    context = target_labels(sc)["context"] if context is None else context
    _client_not_redirected(sc)
    for need in all_needs(sc, context):
        wide = sorted({r.resource for r in need.rules if r.cluster})
        if wide:
            raise ValidationError(f"acts on {', '.join(wide)} across the whole cluster, "
                                  "outside any namespace the allowlist can name",
                                  file=need.file, field=need.where)
        safety.allowed("namespaces", need.namespace, field=need.where, file=need.file)
        if need.source == "runbook" and need.context is None:
            raise ValidationError("a runbook for a team's cluster names the context it acts "
                                  "in: add --context {{ context }} (the label the target "
                                  "adds)", file=need.file, field=need.where)
        if need.context is not None and not (need.context == context == IN_CLUSTER_CONTEXT):
            # (inside the cluster its ServiceAccount's Roles are the bound)
            safety.allowed("contexts", need.context, field=need.where, file=need.file)


CLIENT_KEYS = ("KUBERNETES_", "KUBECONFIG")  # what chaosk8s reads from secrets or the env


def _client_not_redirected(sc: Scenario) -> None:
    """The experiment may not point the Kubernetes client elsewhere: chaosk8s reads
    ``KUBERNETES_CONTEXT``, ``KUBERNETES_HOST``, credentials and the like from an
    activity's secrets before the environment the target sets, so a secret (or a
    configuration value) of that name would act in a cluster the allowlist never saw."""
    file = str(sc.experiment)
    experiment = read_yaml(sc.experiment)
    if not isinstance(experiment, dict):
        return  # the experiment's own checks say why
    for section in ("secrets", "configuration"):
        scopes = experiment.get(section)
        if section == "configuration":
            scopes = {"": scopes}
        for scope, values in (scopes or {}).items() if isinstance(scopes, dict) else ():
            for key in values if isinstance(values, dict) else ():
                if str(key).upper().startswith(CLIENT_KEYS):
                    where = ".".join(p for p in (section, str(scope), str(key)) if p)
                    raise ValidationError(
                        f"{key} would point the Kubernetes client away from the target's "
                        "cluster: the target gives it the kubeconfig and context "
                        "(cluster in the scenario)", file=file, field=where)
