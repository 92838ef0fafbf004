"""``gameday cluster``: Kubernetes targets (kind for users, kwok for tests)."""

from __future__ import annotations

import click

PROVIDER = click.option("--provider", type=click.Choice(["kind", "kwok"]), default="kind",
                        show_default=True,
                        help="kind (needs a container engine) or kwok (a real control plane "
                             "with simulated nodes, built by scripts/build-controlplane).")


@click.group()
def cluster() -> None:
    """A Kubernetes cluster with the shop deployed, for game days."""


@cluster.command()
@PROVIDER
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 1000),
              help="Simulated nodes (kwok only).")
def up(provider: str, nodes: int) -> None:
    """Create the cluster and deploy the shop into namespace gameday-shop."""
    from gameday.targets import cluster as k8s

    c = k8s.up(provider, nodes=nodes)
    click.echo(f"cluster {k8s.cluster_name()} up ({provider}); kubeconfig {c.kubeconfig}")


@cluster.command()
@PROVIDER
def down(provider: str) -> None:
    """Delete the cluster."""
    from gameday.targets import cluster as k8s

    k8s.down(provider)
    click.echo(f"cluster {k8s.cluster_name()} deleted ({provider})")


@cluster.command()
@PROVIDER
def status(provider: str) -> None:
    """Show the cluster's nodes and the shop's deployments."""
    from gameday.targets import cluster as k8s

    c = k8s.existing(provider)
    click.echo(k8s.kubectl(c, "get", "nodes"))
    click.echo(k8s.kubectl(c, "-n", k8s.NAMESPACE, "get", "deployments"))
