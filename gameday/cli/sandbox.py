"""``gameday sandbox``: start, stop and operate the embedded sandbox.

The operations are the commands runbooks call, one command a person could type.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gameday.cli.common import State, emit

if TYPE_CHECKING:
    from gameday.targets.sandbox import SandboxClient


@click.group()
@click.option("--state-dir", type=click.Path(path_type=Path),
              help="The sandbox's state directory [default: .gameday/sandbox in the "
                   "project; env GAMEDAY_SANDBOX].")
@click.pass_context
def sandbox(ctx: click.Context, state_dir: Path | None) -> None:
    """The embedded sandbox shop: frontend -> checkout -> payments (+ fraud)."""
    given = state_dir is not None
    if state_dir is None:
        state = ctx.find_object(State)
        if state is None:
            raise RuntimeError("`sandbox` must run under the gameday CLI, which sets its State")
        state_dir = state.settings.sandbox_dir
    _check_directory(state_dir, given)
    ctx.meta["gameday.sandbox_state"] = state_dir


def _check_directory(state_dir: Path, given: bool) -> None:
    """A state directory that is, or would have to be made under, something other than
    a directory (a regular file) is a usage error naming where it was set, before any
    command reads or writes in it."""
    for path in (state_dir, *state_dir.parents):
        if not path.exists():  # False also where a parent is a file (ENOTDIR)
            continue
        if path.is_dir():
            return
        what = "" if path == state_dir else f" ({path} is not a directory)"
        if given:
            raise click.BadParameter(f"{str(state_dir)!r} is not a directory{what}",
                                     param_hint="--state-dir")
        raise click.UsageError(f"the sandbox's state directory {state_dir} is not a "
                               f"directory{what}; set it with --state-dir, GAMEDAY_SANDBOX "
                               "or [paths] sandbox in gameday.toml")


def _state_dir() -> Path:
    return Path(click.get_current_context().meta["gameday.sandbox_state"])


def client() -> SandboxClient:
    from gameday.targets.sandbox import SandboxClient

    return SandboxClient(_state_dir())


@sandbox.command()
@click.option("--alerting", type=click.Choice(["none", "prometheus"]), default="none",
              show_default=True,
              help="Also start Prometheus and Alertmanager, alerting `gameday serve`.")
@click.option("--gameday-url", default="http://127.0.0.1:8080", show_default=True,
              help="Where `gameday serve` listens (webhook and runbook links).")
@click.option("--token", envvar="GAMEDAY_TOKEN",
              help="The token of `gameday serve` [env GAMEDAY_TOKEN].")
def up(alerting: str, gameday_url: str, token: str | None) -> None:
    """Start the sandbox in the background (stop it with `gameday sandbox down`)."""
    import json

    from gameday.targets.sandbox import start_sandbox, stop_sandbox

    if alerting == "prometheus" and not token:
        raise click.UsageError("--alerting prometheus needs --token (or GAMEDAY_TOKEN)")
    c = start_sandbox(_state_dir(), detach=True)
    click.echo(f"sandbox up: {c.entrypoint} (state in {_state_dir()})")
    if alerting == "prometheus" and token:  # a token was required above
        from gameday.targets.sandbox.alerting import start_alerting

        try:
            stack = start_alerting(c.state_dir / "alerting", c.state(),
                                   webhook_url=f"{gameday_url}/api/v1/alerts", token=token,
                                   gameday_url=gameday_url)
        except Exception:
            stop_sandbox(_state_dir())
            raise
        (c.state_dir / "alerting.json").write_text(json.dumps(
            {"pids": [p.pid for p in stack.procs], "prometheus": stack.prometheus_url}))
        click.echo(f"prometheus {stack.prometheus_url}, alerting {gameday_url}/api/v1/alerts")


@sandbox.command()
def down() -> None:
    """Stop the sandbox and every process it started (also after a crash)."""
    import json
    import os
    import signal

    from gameday.targets.sandbox import stop_sandbox

    alerting = _state_dir() / "alerting.json"
    if alerting.exists():  # first, so a stopping shop pages nobody
        for pid in json.loads(alerting.read_text())["pids"]:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if str(_state_dir().resolve() / "alerting").encode() in cmdline:
                os.kill(pid, signal.SIGTERM)
        alerting.unlink()
    killed = stop_sandbox(_state_dir())
    click.echo("sandbox down" + (f" (killed leftover pids {killed})" if killed else ""))


@sandbox.command()
@click.argument("service", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.option("--require-healthy", is_flag=True,
              help="Exit 1 unless every replica shown is running.")
def status(service: str | None, as_json: bool, require_healthy: bool) -> None:
    """Show services, replicas, releases and flags."""
    state = client().state()
    services = state["services"]
    if service:
        if service not in services:
            raise click.UsageError(f"no sandbox service {service!r} "
                                   f"(known: {', '.join(services)})")
        services = {service: services[service]}
    if as_json:
        emit(state if not service else services[service])
    else:
        click.echo(f"entrypoint {state['entrypoint']}")
        for name, svc in services.items():
            flags = ", ".join(f"{k}={'on' if v else 'off'}" for k, v in svc["flags"].items())
            extra = f" latency+{svc['latency_ms']}ms" if svc["latency_ms"] else ""
            click.echo(f"{name} {svc['release']} router :{svc['router_port']}"
                       f"{' flags ' + flags if flags else ''}{extra}")
            for r in svc["replicas"]:
                drained = " drained" if r["drained"] else ""
                click.echo(f"  {name}-{r['index']} pid {r['pid']} :{r['port']} "
                           f"{r['release']} {r['status']}{drained}")
    if require_healthy:
        bad = [f"{n}-{r['index']} is {r['status']}" for n, svc in services.items()
               for r in svc["replicas"] if r["status"] != "running"]
        if bad:
            click.echo("not healthy: " + "; ".join(bad), err=True)
            sys.exit(1)


@sandbox.command()
@click.argument("service")
@click.option("--replica", type=int, help="Only this replica.")
@click.option("--failed", is_flag=True, help="Only replicas that are not running.")
def restart(service: str, replica: int | None, failed: bool) -> None:
    """Restart a service's replicas, one at a time."""
    svc = client().operate("restart", service=service, replica=replica, only_failed=failed)
    restarted = svc.get("restarted", [])
    click.echo(f"{service}: restarted {len(restarted)} replica(s); " + ", ".join(
        f"{service}-{r['index']} {r['status']} pid {r['pid']}" for r in svc["replicas"]))


@sandbox.command()
@click.argument("service")
@click.argument("version")
def deploy(service: str, version: str) -> None:
    """Roll out VERSION of SERVICE to every replica."""
    svc = client().operate("deploy", service=service, version=version)
    click.echo(f"{service} now runs {svc['release']}")


@sandbox.command()
@click.argument("service")
@click.option("--to", "to", help="A specific earlier release.")
def rollback(service: str, to: str | None) -> None:
    """Roll SERVICE back to its previous release."""
    svc = client().operate("rollback", service=service, to=to)
    click.echo(f"{service} rolled back to {svc['release']}")


@sandbox.command()
@click.argument("service")
def releases(service: str) -> None:
    """Show SERVICE's release history, oldest first."""
    svc = client().state()["services"].get(service)
    if svc is None:
        raise click.UsageError(f"no sandbox service {service!r}")
    for version in svc["history"]:
        click.echo(version + ("  (current)" if version == svc["release"] else ""))


@sandbox.command()
@click.argument("service")
@click.argument("replicas", type=click.IntRange(0, 10))
def scale(service: str, replicas: int) -> None:
    """Run REPLICAS replicas of SERVICE."""
    svc = client().operate("scale", service=service, replicas=replicas)
    click.echo(f"{service} has {len(svc['replicas'])} replicas")


@sandbox.command()
@click.argument("service")
@click.argument("name")
@click.argument("value", type=click.Choice(["on", "off"]))
def flag(service: str, name: str, value: str) -> None:
    """Turn a feature flag of SERVICE on or off."""
    client().operate("flag", service=service, name=name, value=value == "on")
    click.echo(f"{service} flag {name} is {value}")


@sandbox.command()
@click.argument("service")
def flags(service: str) -> None:
    """Show SERVICE's feature flags."""
    svc = client().state()["services"].get(service)
    if svc is None:
        raise click.UsageError(f"no sandbox service {service!r}")
    for name, value in svc["flags"].items():
        click.echo(f"{name} {'on' if value else 'off'}")


@sandbox.command()
@click.argument("service")
@click.argument("replica", type=int)
@click.option("--undo", is_flag=True, help="Put the replica back in rotation.")
def drain(service: str, replica: int, undo: bool) -> None:
    """Take a replica out of its router's rotation."""
    client().operate("drain", service=service, replica=replica, drained=not undo)
    click.echo(f"{service}-{replica} {'back in rotation' if undo else 'drained'}")
