"""`gameday serve` as a real process on loopback: the interface the checks rely on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gameday.store import Store

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
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


def test_three_posts_one_run_and_401_without_token(tmp_path, gameday_serve):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db)}
    gameday_serve(env, "--data-dir", str(tmp_path / "data"), port=port)
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
    status, answer = post(port, body, token=None)
    assert status == 401
    answers = [post(port, body) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 200]
    assert len({a[1]["incident_id"] for a in answers}) == 1
    assert [a[1]["alerts"][0]["duplicate"] for a in answers] == [False, True, True]
    assert len(Store(db).runs()) == 1


def test_a_10_mb_webhook_gets_a_413_every_client_can_read(tmp_path, gameday_serve):
    """urllib sends its whole body without waiting, curl asks ``Expect: 100-continue``,
    a chunked body declares no length: each one reads the 413 and its reason (never a
    reset connection), and the server keeps answering."""
    import http.client
    import shutil

    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db")}
    big = b'{"version": "4", "padding": "' + b"x" * (10 << 20) + b'"}'
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    served = gameday_serve(env, "--data-dir", str(tmp_path / "data"), "--no-scheduler")
    base, port = served.base, served.port
    request = urllib.request.Request(base + "/api/v1/alerts", data=big,
                                     headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert "payload larger than" in json.loads(refused.value.read())["error"]

    def chunks():
        for start in range(0, len(big), 1 << 16):
            yield big[start:start + (1 << 16)]

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/v1/alerts", body=chunks(), headers=headers,
                 encode_chunked=True)
    answer = conn.getresponse()
    assert answer.status == 413 and b"payload larger" in answer.read()
    conn.close()

    if shutil.which("curl"):
        (tmp_path / "big.json").write_bytes(big)
        curl = subprocess.run(
            ["curl", "-sS", "-o", str(tmp_path / "answer"), "-w", "%{http_code}",
             *[a for k, v in headers.items() for a in ("-H", f"{k}: {v}")],
             "--data-binary", f"@{tmp_path / 'big.json'}", base + "/api/v1/alerts"],
            capture_output=True, text=True, timeout=60)
        assert (curl.returncode, curl.stdout) == (0, "413"), curl.stderr
        assert "payload larger" in (tmp_path / "answer").read_text()
    with urllib.request.urlopen(base + "/healthz", timeout=5) as health:
        assert json.loads(health.read()) == {"status": "ok"}

