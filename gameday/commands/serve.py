"""``gameday serve``: the webhook receiver and one-click runbook pages."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from gameday.commands import Duration, State, pass_state


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback is exposed to the network.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="GAMEDAY_TOKEN", required=True,
              help="Bearer token for the API and for signing in [env GAMEDAY_TOKEN].")
@click.option("--max-concurrent", default=2, show_default=True, type=click.IntRange(1, 32),
              help="Runbooks running at once; more are queued.")
@click.option("--coalesce-window", type=Duration(), default="5m", show_default=True,
              envvar="GAMEDAY_COALESCE_WINDOW",
              help="After a runbook run succeeded, alerts that would start it again with "
                   "the same parameters join it for this long (0: only while it is queued "
                   "or running) [env GAMEDAY_COALESCE_WINDOW].")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True,
              help="Run the scheduled game days (gameday schedule) that fall due.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where ansible-runner's artifacts for each run go "
                   "[default: .gameday/serve in the project].")
@pass_state
def serve(state: State, host: str, port: int, token: str, max_concurrent: int,
          coalesce_window: float, scheduler: bool, data_dir: Path | None) -> None:
    """Receive Alertmanager webhooks and serve one-click runbook pages."""
    import uvicorn

    from gameday.web.app import create_app

    if len(token) < 16:
        raise click.BadParameter("use at least 16 characters", param_hint="--token")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        click.echo(f"warning: binding {host}: gameday serve runs playbooks; keep it "
                   "behind TLS and a firewall", err=True)
    # Runbooks drive the project's sandbox and record into the same store, from
    # whatever directory ansible-runner gives them.
    env = {"GAMEDAY_SANDBOX": str(state.settings.sandbox_dir),
           "GAMEDAY_DB": str(state.store.path.resolve())}
    from gameday.recovery import recover

    recover(state.store, say=click.echo)  # game days that crashed while nobody watched
    app = create_app(token=token, store=state.store,
                     data_dir=(data_dir or state.settings.serve_dir).resolve(),
                     max_concurrent=max_concurrent, env=env, coalesce_window=coalesce_window,
                     settings=state.settings)
    from gameday.runbook import prewarm

    prewarm()  # the warm runbook executor imports Ansible while the server starts
    click.echo(f"gameday serve on http://{host}:{port} (webhook: POST /api/v1/alerts)")
    schedules = None
    if scheduler:
        from gameday.scheduler import Scheduler

        schedules = Scheduler(state.store, state.settings, say=click.echo,
                              env={"GAMEDAY_URL": os.environ.get("GAMEDAY_URL")
                                   or f"http://{host}:{port}"})
        schedules.start()
    try:
        # limit_concurrency: past that many connections and requests at once, 503 (a
        # webhook sender retries) instead of unbounded memory.
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    limit_concurrency=1024)
    finally:
        if schedules:
            schedules.stop()
