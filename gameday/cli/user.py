"""``gameday user``: the people of ``gameday serve``, their access roles and their tokens.

Once anyone has a token of their own, people sign in with theirs (the shared token
still serves the webhook and scripts), and destructive runs need a second person.
"""

from __future__ import annotations

import click

from gameday.cli.common import State, emit, pass_state, person
from gameday.core.clock import shown_utc
from gameday.core.policy import ACCESS_ROLES


@click.group()
def user() -> None:
    """People, their roles (viewer, responder, commander, admin) and their tokens:
    add, list, rotate, role, revoke."""


@user.command()
@click.argument("name", callback=person)
@click.option("--role", type=click.Choice(ACCESS_ROLES), required=True,
              help="viewer: sees; responder: runs runbooks and makes moves; commander: "
                   "also asks for and approves destructive runs and starts drills; admin: "
                   "everything.")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def add(state: State, name: str, role: str, as_json: bool) -> None:
    """Add NAME with ROLE and print their token, once: it is stored only as its hash."""
    import getpass

    from gameday.core.audit import Audit
    from gameday.people.auth import NOT_PEOPLE, new_token, token_sha256

    if name in NOT_PEOPLE:
        raise click.BadParameter(f"{name} is who gameday itself acts as, not a person's "
                                 "name", param_hint="NAME")
    token = new_token()
    by = getpass.getuser()
    again = state.store.add_user(name, role, token_sha256(token), created_by=by)
    state.store.audit(by, Audit.USER_ADDED, {"name": name, "role": role, "again": again})
    if as_json:
        emit({"name": name, "role": role, "token": token, "again": again})
        return
    back = " again (revoked before; their old token and sessions stay dead)" if again else ""
    click.echo(f"{name} is a {role}{back}. Their token (shown once; gameday keeps only its "
               "hash):")
    click.echo(token)


@user.command()
@click.argument("name", callback=person)
@click.option("--json", "as_json", is_flag=True)
@pass_state
def rotate(state: State, name: str, as_json: bool) -> None:
    """Give NAME a new token and print it, once; the old token and every session it
    signed in stop working at once."""
    import getpass

    from gameday.core.audit import Audit
    from gameday.people.auth import new_token, token_sha256

    token = new_token()
    if not state.store.rotate_user(name, token_sha256(token)):
        raise click.ClickException(f"no active user {name} (gameday user add {name} "
                                   "--role ROLE)")
    state.store.audit(getpass.getuser(), Audit.USER_ROTATED, {"name": name})
    if as_json:
        emit({"name": name, "token": token})
        return
    click.echo(f"{name}'s new token (shown once; the old one no longer works):")
    click.echo(token)


@user.command()
@click.argument("name", callback=person)
@click.argument("new_role", metavar="ROLE", type=click.Choice(ACCESS_ROLES))
@pass_state
def role(state: State, name: str, new_role: str) -> None:
    """Make NAME a ROLE; their signed-in sessions have the new rights at once."""
    import getpass

    from gameday.core.audit import Audit

    was = state.store.set_user_role(name, new_role)
    if was is None:
        raise click.ClickException(f"no active user {name}")
    state.store.audit(getpass.getuser(), Audit.USER_ROLE_CHANGED,
                      {"name": name, "from": was, "to": new_role})
    click.echo(f"{name}: {was} -> {new_role}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def list_users(state: State, as_json: bool) -> None:
    """Everyone, with their role, and when they were added or revoked (never tokens)."""
    rows = state.store.users()
    if as_json:
        emit(rows)
        return
    for u in rows:
        revoked = f"  revoked {shown_utc(u['revoked_at'])}" if u["revoked_at"] else ""
        click.echo(f"{u['name']:20} {u['role']:10} added {shown_utc(u['created_at'])} by "
                   f"{u['created_by']}{revoked}")
    if not rows:
        click.echo("nobody yet: the shared token signs people in (gameday user add NAME "
                   "--role ROLE)")


@user.command()
@click.argument("name", callback=person)
@pass_state
def revoke(state: State, name: str) -> None:
    """Revoke NAME's token and sessions at once."""
    import getpass

    from gameday.core.audit import Audit

    if not state.store.revoke_user(name):
        raise click.ClickException(f"no active user {name}")
    state.store.audit(getpass.getuser(), Audit.USER_REVOKED, {"name": name})
    click.echo(f"{name} revoked")


ACCOUNT = (r"@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(:[0-9]{1,5})?"  # a Matrix user id
           r"|[UW][A-Z0-9]{2,20}")                         # a Slack member id


def _account(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(ACCOUNT, value):
        raise click.BadParameter("a Matrix user id (@ana:example.org) or a Slack member "
                                 "id (U012AB3CD)", param_hint="--chat")
    return value


@user.command()
@click.argument("name", callback=person)
@click.option("--chat", "account", required=True, metavar="ACCOUNT", callback=_account,
              help="Their chat account: a Matrix user id (@ana:example.org) or a Slack "
                   "member id (U012AB3CD).")
@click.option("--move", is_flag=True,
              help="The account is someone else's now: give it to NAME.")
@pass_state
def link(state: State, name: str, account: str, move: bool) -> None:
    """Link NAME's chat ACCOUNT: what they do in an incident's room is done as NAME,
    with NAME's role. An account is one person's: taking it from someone else takes
    --move, so a typo never lets one person act as another."""
    import getpass

    from gameday.core.audit import Audit

    if state.store.user(name) is None:
        raise click.ClickException(f"no active user {name} (gameday user add {name})")
    holder = state.store.chat_person(account)
    if holder not in (None, name) and not move:
        raise click.ClickException(f"{account} is {holder}'s: --move gives it to {name}")
    state.store.link_chat_account(account, name)
    state.store.audit(getpass.getuser(), Audit.CHAT_LINKED, {"name": name, "account": account,
                                                              "from": holder})
    click.echo(f"{account} is {name} in chat")


@user.command()
@click.argument("name", callback=person)
@click.option("--chat", "account", required=True, metavar="ACCOUNT", callback=_account)
@pass_state
def unlink(state: State, name: str, account: str) -> None:
    """ACCOUNT no longer acts as NAME in chat."""
    import getpass

    from gameday.core.audit import Audit

    if not state.store.unlink_chat_account(account, name):
        raise click.ClickException(f"{account} is not {name}'s")
    state.store.audit(getpass.getuser(), Audit.CHAT_LINKED, {"name": None,
                                                              "account": account,
                                                              "from": name})
    click.echo(f"{account} is nobody in chat")
