"""Which of the team's own systems a real alert's runbook acts on, and whether it may.

A project that names its systems (``[[targets]]`` in ``gameday.toml``: a cluster by
kubeconfig and context, a service by its inventory) gets each real alert's runs in the
environment of the one whose ``match`` labels the alert carries, never one the alert
names alone: a cluster's context label is the target's, over any the alert sends. An
alert that matches none acts nowhere (its incident records why). A run in a cluster is
checked against the project's allowlist before it starts: every kubectl command's
namespace and context ([safety] namespaces, contexts), as ``runbooks.kubectl`` reads
them. A game day's or a drill's incident acts in its own target, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gameday.core import safety
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.events import Kind
from gameday.core.settings import AlertTarget, current
from gameday.incidents.incident import Incident
from gameday.runbooks.kubectl import runbook_needs
from gameday.runbooks.runbook import Runbook


def alert_target(incident: Incident | None,
                 labels: Mapping[str, str] | None = None) -> AlertTarget | None:
    """The target a real incident's alert (``labels``, else its first alert's) belongs
    to; None when the project names none, or for a game day's incident. GamedayError
    when the project names some and none matches."""
    targets = current().targets
    if not targets or incident is None or incident.row.get("run_dir"):
        return None
    if labels is None:
        fired = next((e for e in incident.events() if e.kind == Kind.ALERT_FIRED), None)
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
    try:
        for need in runbook_needs(runbook, params):
            if need.context is None:
                raise ValidationError("names no --context: a runbook for a team's cluster "
                                      "says which one it acts in", file=need.file,
                                      field=need.where)
            safety.allowed("contexts", need.context, field=need.where, file=need.file)
            safety.allowed("namespaces", need.namespace, field=need.where, file=need.file)
            if need.context != target.context:
                raise ValidationError(f"acts in context {need.context!r}, not the "
                                      f"{target.name} target's ({target.context})",
                                      file=need.file, field=need.where)
    except ValidationError as exc:
        raise GamedayError(f"not run in {target.name}: {exc}") from None
