"""The toxic activities against a real Toxiproxy: a rollback whose toxic is already gone
(a runbook got there first) succeeds, one whose proxy Toxiproxy does not have fails (it
removed nothing: the toxic may be on the proxy it meant)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed
from serving import eventually
from teamstack import BIN, _answers, needs_build

from gameday.activities.toxiproxy import add_toxic, remove_toxic, toxics
from gameday.targets.sandbox.supervisor import free_port

pytestmark = [pytest.mark.slow, needs_build]
PROXY, ELSEWHERE = "checkout-payments", "checkout-fraud"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Toxiproxy with the proxy PROXY (not ELSEWHERE), in a project allowing both."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "toxiproxy.log", "wb") as log:
        proc = subprocess.Popen([str(BIN / "toxiproxy-server"), "-host", "127.0.0.1",
                                 "-port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: _answers(f"{url}/version"), 30, "Toxiproxy to answer")
        body = json.dumps({"name": PROXY, "listen": f"127.0.0.1:{free_port()}",
                           "upstream": "127.0.0.1:9"}).encode()
        urllib.request.urlopen(urllib.request.Request(
            f"{url}/proxies", data=body, method="POST",
            headers={"Content-Type": "application/json"}), timeout=5).close()
        (tmp_path / "gameday.toml").write_text(
            f'[safety]\ntoxiproxy = ["{url}"]\nproxies = ["{PROXY}", "{ELSEWHERE}"]\n')
        monkeypatch.chdir(tmp_path)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_toxic_already_gone_or_with_its_proxy_is_removed(api):
    add_toxic(PROXY, "latency", {"latency": 400}, name="slow-payments", api=api)
    assert [t["name"] for t in toxics(PROXY, api=api)] == ["slow-payments"]
    assert remove_toxic(PROXY, name="slow-payments", api=api)["removed"] is True
    assert toxics(PROXY, api=api) == []
    # a runbook got there first: the rollback has nothing left to do, and says so
    assert remove_toxic(PROXY, type="latency", api=api) == {
        "proxy": PROXY, "toxic": "gameday-latency", "removed": False}
    # Toxiproxy restarted since the fault: the proxy, and every toxic on it, is gone
    # (a rollback that failed here would keep the game day's lease for good)
    add_toxic(PROXY, "latency", {"latency": 400}, name="slow-payments", api=api)
    urllib.request.urlopen(urllib.request.Request(f"{api}/proxies/{PROXY}",
                                                  method="DELETE"), timeout=5).close()
    assert remove_toxic(PROXY, name="slow-payments", api=api)["removed"] is False


def test_a_toxic_name_is_one_path_segment_whatever_it_holds(api):
    """A name with ``/`` or ``..`` in it never reaches another of Toxiproxy's resources:
    removing toxic ``../../proxies/checkout-payments`` is not a DELETE of the proxy."""
    from gameday.targets.toxiproxy import toxics_path

    assert toxics_path("p q", "../x") == "/proxies/p%20q/toxics/..%2Fx"
    with pytest.raises(ActivityFailed, match="toxiproxy DELETE"):
        remove_toxic(PROXY, name="../../proxies/checkout-payments", api=api)
    names = [p["name"] for p in json.loads(urllib.request.urlopen(f"{api}/proxies",
                                                                  timeout=5).read()).values()]
    assert names == [PROXY]  # still there
