"""The command line prints a stored moment in UTC and says so, whatever the machine's
zone or the day (each pinned moment of ``conftest.MOMENTS``, clock changes included):
``incident list``, ``user list``, ``drill list`` and the schedules (``clock.shown_utc``)."""

from __future__ import annotations

from datetime import UTC

from click.testing import CliRunner

from gameday.cli.main import cli
from gameday.incidents.incident import Incident


def test_incident_and_user_lists_say_their_times_are_utc(moment, store):
    Incident.open(store, "payments down", service="payments")
    store.add_user("ana", "responder", "0" * 64, "admin")
    shown = moment.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    incidents = CliRunner().invoke(cli, ["incident", "list"])
    assert incidents.exit_code == 0, incidents.output
    assert f" {shown}:" in incidents.output and " UTC  payments down" in incidents.output
    users = CliRunner().invoke(cli, ["user", "list"])
    assert users.exit_code == 0, users.output
    assert f"added {shown}:" in users.output and " UTC by admin" in users.output
