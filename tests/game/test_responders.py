"""The response's alert: whichever fires it, the target's labels over its own."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from gameday.game.responders import Response


def test_the_targets_labels_go_over_an_external_alerts(scenario):
    """The team's Alertmanager knows nothing of the kubeconfig context a game day runs
    in (or names another): the runbook it routes acts in the target's."""
    detector = SimpleNamespace(fired=threading.Event())
    response = Response(scenario, None, detector, Path(), {}, print,  # type: ignore[arg-type]
                        target_labels={"context": "kwok-team"})
    assert response.alert[1] == {**scenario.alert.labels, "context": "kwok-team"}
    response.external_alert("KubeDeploymentReplicasUnavailable",
                            {"namespace": "payments", "context": "kwok-elsewhere"},
                            {"runbook_url": "http://127.0.0.1:8080/runbooks/x"})
    assert response.alert == ("KubeDeploymentReplicasUnavailable",
                              {"namespace": "payments", "context": "kwok-team"},
                              {"runbook_url": "http://127.0.0.1:8080/runbooks/x"})
    assert detector.fired.is_set()
    response.external_alert("Another", {}, {})  # after the first: the first stands
    assert response.alert[0] == "KubeDeploymentReplicasUnavailable"
