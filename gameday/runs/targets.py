"""Which of the team's own systems a real alert's runbook acts on, and whether it may.

A project that names its systems (``[[targets]]`` in ``gameday.toml``: a cluster by
kubeconfig and context, a service by its inventory) gets each real alert's runs in the
environment of the one whose ``match`` labels the alert carries, never one the alert
names alone: a cluster's context label is the target's, over any the alert sends. An
alert that matches none acts nowhere (its incident records why). A run in a cluster is
checked against the project's allowlist before it is queued, however it was asked
for (``admit_run``): every kubectl command's namespace and context ([safety]
namespaces, contexts), as ``runbooks.kubectl`` reads them. A game day's or a drill's
incident acts in its own target, and a run in its cluster is held to it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gameday.core import safety
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.events import Kind
from gameday.core.settings import AlertTarget, current
from gameday.incidents.incident import Incident
from gameday.runbooks.executor import TEAM_INVENTORY
from gameday.runbooks.hosts import tasks_within
from gameday.runbooks.kubectl import runbook_needs
from gameday.runbooks.runbook import Runbook


def alert_target(incident: Incident | None, labels: Mapping[str, str] | None = None, *,
                 targets: Sequence[AlertTarget] | None = None) -> AlertTarget | None:
    """The target a real incident's alert (``labels``, else its first alert's) belongs
    to, among ``targets`` (the project's: ``current().targets``); None when the project
    names none, or for a game day's incident. GamedayError when the project names some
    and none matches."""
    targets = current().targets if targets is None else targets
    if not targets or incident is None or incident.row.get("run_dir"):
        return None
    if labels is None:
        fired = next(iter(incident.store.events(incident.id, kinds=[Kind.ALERT_FIRED],
                                                limit=1)), None)  # its first alert only
        labels = dict(fired.data.get("labels") or {}) if fired else {}
    for target in targets:
        if target.matches(labels):
            return target
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"
    raise GamedayError(f"the alert's labels ({shown}) match none of the project's targets "
                       f"([[targets]] in gameday.toml: {', '.join(t.name for t in targets)})"
                       ": gameday acts nowhere it was not told to")


def admit(target: AlertTarget | None, runbook: Runbook, params: Mapping[str, Any]) -> None:
    """Refuse (GamedayError, saying why) a run in a cluster that would act in a
    namespace or context outside the project's allowlist, or that it cannot read."""
    if target is None or target.kind != "kubernetes":
        return
    assert target.context is not None
    _within(target.context, target.name, runbook, params, vetted=False)


def admit_run(incident: Incident | None, runbook: Runbook, params: Mapping[str, Any],
              env: Mapping[str, str] | None) -> None:
    """Any run about to be queued or to wait for approval (a one-click page, four eyes,
    ``gameday runbook run --incident``, an alert's), by the world it will act in
    (``env``): in a team's cluster it acts only where the allowlist says and in that
    cluster's context. A game day's or a drill's cluster is the context its target
    gave it (its lease's, checked against the allowlist when the game day started); a
    real incident's is the ``[[targets]]`` entry whose kubeconfig and context it is. On
    a team's hosts (an inventory's), no task delegates outside the allowlist or adds
    hosts (``runbooks.hosts``)."""
    if (env or {}).get(TEAM_INVENTORY):  # a team's hosts: what --limit does not hold
        try:
            tasks_within(runbook, current().safety.hosts)
        except ValidationError as exc:
            raise GamedayError(f"not run on the team's hosts: {exc}") from None
    context = (env or {}).get("KUBERNETES_CONTEXT")
    if not context:
        return
    if incident is not None and incident.row.get("run_dir"):
        lease = next((row for row in incident.store.running_leases()
                      if row["incident_id"] == incident.id), None)
        if lease is not None and lease["undo"].get("target") == "kubernetes":
            _within(context, f"incident {incident.id}'s cluster", runbook, params,
                    vetted=True)
        return
    kubeconfig = (env or {}).get("KUBECONFIG")
    for target in current().targets:
        if target.kind == "kubernetes" and (target.context, target.kubeconfig) == \
                (context, kubeconfig):
            admit(target, runbook, params)
            return


def _within(context: str, name: str, runbook: Runbook, params: Mapping[str, Any], *,
            vetted: bool) -> None:
    """Every kubectl command of the run in ``context`` (the one ``name`` acts in; with
    ``vetted``, already checked against the allowlist's contexts) and in the
    allowlist's namespaces, nothing across the whole cluster."""
    try:
        for need in runbook_needs(runbook, params):
            if need.context is None:
                raise ValidationError("names no --context: a runbook for a team's cluster "
                                      "says which one it acts in", file=need.file,
                                      field=need.where)
            wide = sorted({r.resource for r in need.rules if r.cluster})
            if wide:
                raise ValidationError(f"acts on {', '.join(wide)} across the whole cluster",
                                      file=need.file, field=need.where)
            if not vetted:
                safety.allowed("contexts", need.context, field=need.where, file=need.file)
            safety.allowed("namespaces", need.namespace, field=need.where, file=need.file)
            if need.context != context:
                raise ValidationError(f"acts in context {need.context!r}, not {name}'s "
                                      f"({context})", file=need.file, field=need.where)
    except ValidationError as exc:
        raise GamedayError(f"not run in {name}: {exc}") from None
