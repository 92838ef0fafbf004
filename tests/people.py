"""People with identities of their own, for the tests of sign-in, roles and four eyes:
``add_user`` adds one as ``gameday user add`` does (to the store ``GAMEDAY_DB`` names)
and gives back the token it printed once. ``TOKEN`` is the server's shared token."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gameday.cli.main import cli

TOKEN = "shared-token-0123456789abcdef"


def add_user(name: str, role: str) -> str:
    result = CliRunner().invoke(cli, ["user", "add", name, "--role", role, "--json"])
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["token"])
