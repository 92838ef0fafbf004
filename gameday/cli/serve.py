"""``gameday serve``: the webhook receiver and one-click runbook pages."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from gameday.cli.common import Duration, State, pass_state


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
@click.option("--four-eyes", type=click.Choice(["destructive", "all", "off"]),
              default="destructive", show_default=True,
              help="Which runs wait for a second person's approval once people have their "
                   "own tokens (gameday user add).")
@click.option("--approval-ttl", type=Duration(), default="15m", show_default=True,
              help="How long such a run waits; then it never runs.")
@click.option("--trusted-user-header", metavar="HEADER",
              help="Single sign-on: believe this header (e.g. X-Forwarded-User) for who is "
                   "asking, from --trusted-proxy addresses only; the name must be a user.")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="CIDR",
              help="An address or network of the reverse proxy that sets the header.")
@click.option("--intake", type=click.Choice(["auto", "process", "thread"]), default="auto",
              show_default=True,
              help="Where alerts are recorded: a process of its own (another core in an "
                   "alert storm) or a thread of this one; auto: a process on SQLite, a "
                   "thread on PostgreSQL (whose server is another process already).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where ansible-runner's artifacts for each run go "
                   "[default: .gameday/serve in the project].")
@pass_state
def serve(state: State, host: str, port: int, token: str, max_concurrent: int,
          coalesce_window: float, scheduler: bool, four_eyes: str, approval_ttl: float,
          trusted_user_header: str | None, trusted_proxies: tuple[str, ...], intake: str,
          data_dir: Path | None) -> None:
    """Receive Alertmanager webhooks and serve one-click runbook pages."""
    import uvicorn

    from gameday.people.auth import Auth
    from gameday.web.app import create_app

    # its identity settings, checked before anything runs (create_app checks them too)
    Auth(token, user_header=trusted_user_header, trusted_proxies=trusted_proxies)
    _check_options(host, port, approval_ttl)
    # What only this process needs stays in it: runbooks, game days and drills started
    # from here inherit its environment, and ansible-runner writes a run's environment
    # into its artifacts (artifacts/*/command). The token is in ``token`` already.
    os.environ.pop("GAMEDAY_TOKEN", None)
    # Runbooks drive the project's sandbox and record into the same store, from
    # whatever directory ansible-runner gives them (its password, if any, never in
    # their environment: Store.child_env).
    env = {"GAMEDAY_SANDBOX": str(state.settings.sandbox_dir), **state.store.child_env()}
    from gameday.game.recovery import recover

    recover(state.store, say=click.echo)  # game days that crashed while nobody watched
    schedules = None
    if scheduler:
        from gameday.schedules.scheduler import Scheduler

        schedules = Scheduler(state.store, state.settings, say=click.echo,
                              env={"GAMEDAY_URL": state.settings.url
                                   if state.settings.url_given else f"http://{host}:{port}"})
    from gameday.chat.config import load as chat_config

    chat = None
    config = chat_config(state.settings)  # a [chat] that does not parse: exit 2, named
    if config is not None:
        from gameday.chat.connect import connect

        chat = connect(config, state.settings.root)  # its token is there; not yet used
    app = create_app(token=token, store=state.store, scheduler=schedules, chat=chat,
                     data_dir=(data_dir or state.settings.serve_dir).resolve(),
                     max_concurrent=max_concurrent, env=env, coalesce_window=coalesce_window,
                     settings=state.settings, four_eyes=four_eyes, approval_ttl=approval_ttl,
                     user_header=trusted_user_header, trusted_proxies=trusted_proxies,
                     intake_process=intake == "process" or (intake == "auto"
                                                            and not state.store.postgres))
    if config is not None:  # its token and Slack's signing secret are read: kept here
        for name in (config.token_env, config.signing_secret_env):
            os.environ.pop(name, None)
    from gameday.runbooks.runbook import prewarm

    prewarm()  # the warm runbook executor imports Ansible while the server starts
    click.echo(f"gameday serve on http://{host}:{port} (webhook: POST /api/v1/alerts)"
               + (f"; incident rooms in {config.kind}" if config else ""))
    if schedules:
        schedules.start()
    try:
        # limit_concurrency: past that many connections and requests at once, 503 (a
        # webhook sender retries) instead of unbounded memory.
        # proxy_headers off: who a request comes from is the socket's peer, never an
        # X-Forwarded-For header (the trusted user header is checked against it).
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    limit_concurrency=1024, proxy_headers=False)
    finally:  # the app's shutdown stopped it already, unless the server never started
        if schedules:
            schedules.stop()


def _check_options(host: str, port: int, approval_ttl: float) -> None:
    """What cannot work is refused before anything starts (exit 2, naming it); binding
    beyond loopback is said out loud."""
    import socket

    if approval_ttl <= 0:
        raise click.BadParameter("a run waiting for approval needs some time to get it",
                                 param_hint="--approval-ttl")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise click.BadParameter(f"{host[:80]!r} is not an address to bind: {exc}",
                                 param_hint="--host") from None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        click.echo(f"warning: binding {host}: gameday serve runs playbooks; keep it "
                   "behind TLS and a firewall", err=True)
