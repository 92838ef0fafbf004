"""Least privilege for a scenario in a cluster, derived, never guessed.

The fault registry (``gameday.activities.faults``) says which Kubernetes API calls each
Chaos Toolkit activity makes; ``gameday.runbooks.kubectl`` says what each kubectl
command of a runbook needs; gameday's own view of the workload (``OBSERVER``) is
granted always. The experiment's probes, actions and
rollbacks, and the tasks of the runbook its alert routes to (``routing``), are looked up
there. Anything not there (an undeclared function, a ``process`` provider, a shell task,
a kubectl command not listed) is refused, naming it, rather than granted ``*``.
``grants`` is what a scenario needs, by namespace; ``role_rules`` writes one scope as a
Role's rules (``cronjob.manifests`` uses both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gameday.activities import faults
from gameday.core.errors import ValidationError
from gameday.core.spec import read_yaml
from gameday.runbooks.kubectl import DNS_LABEL, Need, Rule, ns, runbook_needs
from gameday.runbooks.routing import route
from gameday.runbooks.runbook import Runbook
from gameday.scenarios.scenario import Scenario
from gameday.targets.cluster import IN_CLUSTER_CONTEXT

# gameday's own view of the workload, whatever the fault (``gameday.targets.kube``): the
# Deployment's status (the kwok SLIs, the replica counts in k8s.jsonl) and the
# namespace's events (the timeline). The node events it also looks for in "default"
# are not granted: the watch goes on without them.
OBSERVER = (ns("apps", "deployments/status", "get"), ns("", "events", "list"))

# -- deriving the permissions ----------------------------------------------------------------
Grants = dict[str | None, dict[tuple[str, str], set[str]]]  # namespace (None: cluster)


def all_needs(scenario: Scenario, context: str = IN_CLUSTER_CONTEXT) -> list[Need]:
    """Everything the scenario's game day does on the Kubernetes API: gameday's own view
    of the workload, the experiment's activities, and the tasks of the runbook its alert
    links (with ``context`` as the label the target adds)."""
    found = [Need(OBSERVER, scenario.workload["namespace"], str(scenario.path),
                  "workload.namespace", source="workload")]
    found += _experiment_needs(scenario.experiment)
    book, params = linked_runbook(scenario, context)
    if book is not None:
        found += runbook_needs(book, params)
    return found


def grants(scenario: Scenario, context: str = IN_CLUSTER_CONTEXT) -> Grants:
    grants: Grants = {}
    for need in all_needs(scenario, context):
        _grant(grants, need.rules, need.namespace)
    return grants


def _grant(grants: Grants, rules: Iterable[Rule], namespace: str) -> None:
    for rule in rules:
        scope = grants.setdefault(None if rule.cluster else namespace, {})
        scope.setdefault((rule.group, rule.resource), set()).update(rule.verbs)


def role_rules(scope: dict[tuple[str, str], set[str]]) -> list[dict[str, Any]]:
    return [{"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
            for (group, resource), verbs in sorted(scope.items())]


def _experiment_needs(path: Path) -> list[Need]:
    """What each probe, action and rollback of the experiment needs, and where."""
    file = str(path)
    experiment = read_yaml(path)
    if not isinstance(experiment, dict):
        raise ValidationError("an experiment must be a mapping", file=file)
    configuration = experiment.get("configuration") or {}
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    sections = [("steady-state-hypothesis.probes",
                 hypothesis.get("probes") if isinstance(hypothesis, dict) else None),
                ("method", experiment.get("method")), ("rollbacks", experiment.get("rollbacks"))]
    needs = []
    for section, activities in sections:
        for i, activity in enumerate(activities or []):
            where = f"{section}.{i}"
            if not isinstance(activity, dict):
                raise ValidationError("an activity must be a mapping", file=file, field=where)
            if "ref" in activity and "provider" not in activity:
                continue  # the activity it refers to is counted where it is defined
            label = repr(activity.get("name", "?"))
            provider = activity.get("provider")
            kind = provider.get("type") if isinstance(provider, dict) else None
            if kind == "http":
                continue  # an HTTP call: nothing on the Kubernetes API
            if kind != "python" or not isinstance(provider, dict):
                raise ValidationError(
                    f"activity {label} has a {kind or 'missing'} provider: gameday cannot "
                    "tell which Kubernetes permissions it needs, and grants none it cannot "
                    "derive", file=file, field=f"{where}.provider")
            function = f"{provider.get('module')}:{provider.get('func')}"
            declared = faults.lookup(function)
            if declared is None or not (declared.rbac or declared.local):
                known = (f.key.replace(":", ".") for f in faults.known() if f.rbac)
                raise ValidationError(
                    f"activity {label} calls {function.replace(':', '.')}, whose Kubernetes "
                    "permissions gameday does not know (known: " + ", ".join(known)
                    + "); declare them with gameday.activities.faults (docs/extending.md) "
                    "rather than grant '*'", file=file, field=f"{where}.provider")
            rules = declared.rbac
            if not rules:
                continue  # a proxy's, a host's, the sandbox's: nothing on the Kubernetes API
            arguments = provider.get("arguments") or {}
            ns = arguments.get("ns", "default") if isinstance(arguments, dict) else "default"
            needs.append(Need(rules, _configured(ns, configuration, file, f"{where} ({label})"),
                              file, f"{where}.provider.arguments.ns", source="experiment"))
    return needs


def _configured(value: Any, configuration: Any, file: str, where: str) -> str:
    """An activity's namespace argument, with ``${key}`` taken from the experiment's
    configuration when it is a plain value there."""
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{(\w+)\}", value.strip())
        if m and isinstance(configuration, dict):
            value = configuration.get(m.group(1))
    if not isinstance(value, str) or not DNS_LABEL.match(value):
        raise ValidationError(f"the namespace of {where} is not known before it runs "
                              f"({value!r}): give it as a plain namespace", file=file,
                              field=where)
    return value


def linked_runbook(scenario: Scenario, context: str = IN_CLUSTER_CONTEXT
                   ) -> tuple[Runbook | None, dict[str, Any]]:
    """The runbook a game day would run for the scenario's alert (auto mode only: in a
    drill people run it, elsewhere), with its parameters as the target would give them
    (its ``context`` label: in the cluster, or the team's)."""
    if scenario.response.mode != "auto":
        return None, {}
    alert = scenario.alert
    labels = {**alert.labels, "context": context}  # what the target adds
    found = route(alert.name, labels, alert.annotations, runbook=scenario.response.runbook,
                  overrides=scenario.response.params)
    if found.error is not None:
        field = "response.runbook" if scenario.response.runbook else "alert"
        raise ValidationError(f"the runbook for {alert.name} cannot run: {found.error}",
                              file=str(scenario.path), field=field)
    return found.runbook, dict(found.params or {})


