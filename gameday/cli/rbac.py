"""``gameday rbac``: the least privilege a Kubernetes game day needs, shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command("rbac")
@click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of YAML.")
def rbac(scenario: Path, as_json: bool) -> None:
    """Print the Role a game day of SCENARIO needs in each namespace (a ClusterRole for
    what acts across the cluster), derived from its faults, gameday's own view of the
    workload and the runbook its alert links, as the exported CronJob grants them."""
    import yaml

    from gameday.core.errors import ValidationError
    from gameday.game.rbac import grants, role_rules
    from gameday.scenarios.scenario import CLUSTERS, load_scenario
    from gameday.targets.base import target_labels
    from gameday.targets.cluster import IN_CLUSTER_CONTEXT

    sc = load_scenario(scenario)
    if sc.target not in CLUSTERS:
        raise ValidationError(f"its target is {sc.target}: roles are for a Kubernetes "
                              f"target ({', '.join(CLUSTERS)})", file=str(scenario),
                              field="target")
    context = target_labels(sc).get("context", IN_CLUSTER_CONTEXT)
    found = grants(sc, context)
    docs: list[dict[str, Any]] = []
    name = f"gameday:{sc.name}"
    for ns in sorted((n for n in found if n is not None),
                     key=lambda n: (n != sc.workload["namespace"], n)):
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                     "metadata": {"name": name, "namespace": ns},
                     "rules": role_rules(found[ns])})
    if None in found:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": name}, "rules": role_rules(found[None])})
    if as_json:
        click.echo(json.dumps(docs, indent=2))
        return
    click.echo(f"# What a game day of {sc.name} needs in context {context}, derived from "
               "its faults and its runbook (gameday rbac)")
    click.echo(yaml.safe_dump_all(docs, sort_keys=False), nl=False)
