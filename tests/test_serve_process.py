"""`gameday serve` as a real process on loopback: the interface the checks rely on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gameday.store import Store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "process-token-0123456789abcdef"


def post(port: int, body: dict, token: str | None = TOKEN) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/alerts",
                                     data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_three_posts_one_run_and_401_without_token(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db)}
    with open(tmp_path / "serve.log", "wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "gameday", "serve", "--port",
                                  str(port), "--data-dir", str(tmp_path / "data")],
                                 cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            body = {"version": "4", "groupKey": "{}:{alertname=\"ServiceReplicaDown\"}",
                    "truncatedAlerts": 0, "status": "firing", "receiver": "gameday",
                    "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                    "externalURL": "http://127.0.0.1:9093", "alerts": [{
                        "status": "firing",
                        "labels": {"alertname": "ServiceReplicaDown", "service": "checkout"},
                        "annotations": {"runbook_url": f"http://127.0.0.1:{port}/runbooks/"
                                                       "restart-replica?service=checkout"},
                        "startsAt": "2026-11-22T10:00:00Z", "endsAt": "",
                        "generatorURL": "", "fingerprint": "f00d"}]}
            deadline = time.monotonic() + 30
            while True:
                try:
                    status, answer = post(port, body, token=None)
                    break
                except (urllib.error.URLError, ConnectionError):
                    assert time.monotonic() < deadline, "gameday serve did not start"
                    time.sleep(0.2)
            assert status == 401
            answers = [post(port, body) for _ in range(3)]
            assert [a[0] for a in answers] == [200, 200, 200]
            assert len({a[1]["incident_id"] for a in answers}) == 1
            assert [a[1]["alerts"][0]["duplicate"] for a in answers] == [False, True, True]
            assert len(Store(db).runs()) == 1
        finally:
            serve.terminate()
            serve.wait(timeout=15)
