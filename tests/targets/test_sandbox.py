"""The sandbox with real processes on 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gameday.core.errors import NotFound, SandboxError
from gameday.targets.sandbox import start_sandbox, stop_sandbox
from gameday.targets.sandbox.client import sandbox_processes


def hit(url: str, n: int = 30) -> dict[int, int]:
    parts = urlsplit(url)
    codes: dict[int, int] = {}
    for _ in range(n):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("GET", parts.path)
        status = conn.getresponse().status
        conn.close()
        codes[status] = codes.get(status, 0) + 1
    return codes


@pytest.fixture
def shop(tmp_path: Path):
    client = start_sandbox(tmp_path / "sandbox")
    yield client
    stop_sandbox(tmp_path / "sandbox")


def test_processes_ports_and_metrics(shop):
    state = shop.state()
    assert set(state["services"]) == {"frontend", "checkout", "payments", "fraud"}
    assert len(state["services"]["checkout"]["replicas"]) == 3
    assert urlsplit(state["entrypoint"]).hostname == "127.0.0.1"
    assert hit(state["entrypoint"]) == {200: 30}
    port = state["services"]["checkout"]["replicas"][0]["port"]
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    assert 'gameday_release_info{service="checkout",replica="1",version="v1.4.0"} 1' in text
    assert "gameday_requests_total" in text and "_bucket" in text
    assert len(sandbox_processes(shop.state_dir)) == 1 + 7


def test_kill_restart_deploy_rollback_flag_drain(shop):
    url = shop.entrypoint
    shop.operate("signal", service="checkout", replica=2, signal="KILL")
    codes = hit(url)
    assert codes.get(502, 0) >= 5, codes  # the router still sends the dead one its share
    shop.operate("restart", service="checkout", only_failed=True)
    assert hit(url) == {200: 30}

    shop.operate("deploy", service="checkout", version="v1.5.0")
    codes = hit(url, 60)
    assert codes.get(502, 0) > 0, codes
    svc = shop.operate("rollback", service="checkout")
    assert svc["release"] == "v1.4.0"
    assert svc["history"] == ["v1.3.0", "v1.4.0", "v1.5.0", "v1.4.0"]
    assert hit(url) == {200: 30}

    shop.operate("latency", service="fraud", ms=300)
    start = time.monotonic()
    hit(url, 3)
    assert time.monotonic() - start >= 0.9
    shop.operate("flag", service="checkout", name="fraud_check", value=False)
    start = time.monotonic()
    hit(url, 3)
    assert time.monotonic() - start < 0.9  # checkout no longer calls fraud

    shop.operate("drain", service="checkout", replica=1)
    shop.operate("signal", service="checkout", replica=1, signal="KILL")
    assert hit(url) == {200: 30}  # a drained replica gets no traffic


def test_a_replica_whose_port_was_taken_restarts_on_another(shop):
    """Ports are chosen free, then bound by the replica: if something takes one in
    between, the replica comes up on a new port instead of failing the game day."""
    import socket

    shop.operate("signal", service="payments", replica=1, signal="KILL")
    time.sleep(0.3)
    old = shop.state()["services"]["payments"]["replicas"][0]["port"]
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        squatter.bind(("127.0.0.1", old))
        squatter.listen()
        svc = shop.operate("restart", service="payments", only_failed=True)
        assert svc["restarted"] == [1]
        replica = svc["replicas"][0]
        assert replica["status"] == "running" and replica["port"] != old
        assert hit(shop.entrypoint) == {200: 30}


def test_a_replica_whose_port_another_replica_took_restarts_on_another(shop):
    """As above, when what took the port is another replica, which answers /healthz
    too: only the restarted replica's own answer says it is up (a restart once took
    checkout-1's answer for checkout-2's, which had exited: port in use)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Replica(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    shop.operate("signal", service="payments", replica=1, signal="KILL")
    time.sleep(0.3)
    old = shop.state()["services"]["payments"]["replicas"][0]["port"]
    ThreadingHTTPServer.allow_reuse_address = True  # past TIME_WAIT
    other = ThreadingHTTPServer(("127.0.0.1", old), Replica)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        svc = shop.operate("restart", service="payments", only_failed=True)
        replica = svc["replicas"][0]
        assert replica["status"] == "running" and replica["port"] != old, replica
    finally:
        other.shutdown()
        other.server_close()
    assert hit(shop.entrypoint) == {200: 30}


def test_freeze_times_out_and_thaws(shop):
    shop.operate("signal", service="payments", replica=1, signal="STOP")
    assert shop.state()["services"]["payments"]["replicas"][0]["status"] == "frozen"
    codes = hit(shop.entrypoint, 4)
    assert codes.get(502, 0) + codes.get(504, 0) >= 1, codes
    shop.operate("signal", service="payments", replica=1, signal="CONT")
    assert hit(shop.entrypoint, 10) == {200: 10}


def test_bad_operations_are_refused(shop):
    with pytest.raises(NotFound):
        shop.operate("deploy", service="checkout", version="v9.9.9")
    with pytest.raises(NotFound):
        shop.operate("restart", service="nope")
    with pytest.raises(SandboxError):
        shop.operate("scale", service="checkout", replicas=50)


def test_control_api_needs_the_token(shop):
    conn = http.client.HTTPConnection("127.0.0.1", shop.port)
    conn.request("GET", "/state")
    assert conn.getresponse().status == 401
    conn.close()
    mode = (shop.state_dir / "supervisor.json").stat().st_mode & 0o777
    assert mode == 0o600


def test_nothing_outlives_a_killed_supervisor(tmp_path):
    """SIGKILL the supervisor: the kernel takes its replicas down with it, and
    `stop_sandbox` cleans whatever the state file still names."""
    client = start_sandbox(tmp_path / "sb", detach=True)
    pids = sandbox_processes(client.state_dir)
    assert len(pids) == 8
    os.kill(client.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while sandbox_processes(client.state_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox_processes(client.state_dir) == []
    stop_sandbox(tmp_path / "sb")
    assert not (tmp_path / "sb" / "supervisor.json").exists()
