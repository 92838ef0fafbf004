"""The report as people open it: ``gameday report --html`` is a file read away from the
server, ``/insights`` the same figures on the server's own page."""

from __future__ import annotations

import re

from click.testing import CliRunner
from starlette.testclient import TestClient

TOKEN = "report-token-0123456789abcdef"


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


def test_the_report_files_links_lead_to_the_server_not_the_disk(tmp_path, monkeypatch):
    """Opened from a disk (or an attachment), ``/runbooks/restart-replica`` would be
    ``file:///runbooks/restart-replica``: the file's links go to ``gameday serve`` at the
    project's ``[serve] url``; the server's own page keeps its links on itself."""
    from gameday.cli.main import cli
    from gameday.incidents.incident import Incident
    from gameday.store import Store
    from gameday.web.app import create_app

    monkeypatch.setenv("GAMEDAY_URL", "https://gameday.example.org/")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--html", str(out)])
    assert result.exit_code == 0, result.output
    links = hrefs(out.read_text())
    assert "https://gameday.example.org/runbooks/restart-replica" in links
    assert all(h.startswith(("#", "https://gameday.example.org/")) for h in links), links

    store = Store(tmp_path / "gameday.db")
    Incident.open(store, "checkout down", service="checkout")
    app = create_app(token=TOKEN, store=store, data_dir=tmp_path / "data")
    with TestClient(app) as client:
        page = client.get("/insights", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200 and "/runbooks/restart-replica" in hrefs(page.text)
    assert not [h for h in hrefs(page.text) if "example.org" in h]
    store.close()
