"""An alert storm against one ``gameday serve``: how many alert instances per second
it takes, how fast it answers, whether any accepted instance is lost, how much memory
it needs.

A fresh project gets one automatic runbook (a single debug task) linked from the
storm's alert. ``--clients`` keep-alive connections POST Alertmanager notifications
of ``--alerts-per-post`` distinct alert instances each, for ``--seconds``, spread over
``--services`` services (one alert group each); every ``--redeliver``-th POST repeats
the connection's previous notification, as Alertmanager does when it is not sure a
delivery arrived. Afterwards the store is read directly:

- lost:     instances answered 2xx that are not in the store (must be 0);
- dupes:    instances stored twice (must be 0: a redelivery is not a new instance);
- runs:     runbook runs started (coalescing: one per service while the first is
            queued or running, and none again within the window after it succeeded).

Prints accepted instances/s, POST latency p50/p99, lost, the runs, and the server's
peak RSS (VmHWM). The load comes from one asyncio process on the same machine.

    .venv/bin/python bench/alert_storm.py [--seconds 30] [--clients 16]
        [--alerts-per-post 1] [--services 4] [--redeliver 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from gameday.targets.sandbox.supervisor import free_port

TOKEN = "bench-token-0123456789abcdef"
RUNBOOK = """\
- name: Acknowledge a storm
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    gameday_runbook:
      summary: Note that the service's storm was seen.
      alerts: [StormAlert]
      auto: true
      parameters:
        service: {type: string, required: true, pattern: "^svc-[0-9]+$"}
  tasks:
    - name: Say so
      ansible.builtin.debug:
        msg: "storm on {{ service }}"
"""


def notification(client: int, n: int, per_post: int, services: int) -> tuple[bytes, list[str]]:
    service = f"svc-{(client + n) % services}"
    group = f'{{}}:{{service="{service}"}}'
    alerts, keys = [], []
    for i in range(per_post):
        fingerprint = f"c{client:03d}n{n:07d}i{i:03d}"
        starts = "2026-11-23T00:00:00Z"
        alerts.append({"status": "firing", "fingerprint": fingerprint, "startsAt": starts,
                       "endsAt": "0001-01-01T00:00:00Z",
                       "labels": {"alertname": "StormAlert", "service": service,
                                  "instance": fingerprint, "severity": "warning"},
                       "annotations": {"summary": f"storm on {service}"}})
        keys.append(f"{group}|{fingerprint}|{starts}")
    body = {"version": "4", "status": "firing", "receiver": "gameday", "groupKey": group,
            "truncatedAlerts": 0, "groupLabels": {"service": service},
            "commonLabels": {"alertname": "StormAlert", "service": service},
            "externalURL": "http://alertmanager.invalid", "alerts": alerts}
    return json.dumps(body).encode(), keys


async def client(index: int, port: int, deadline: float, args: argparse.Namespace,
                 latencies: list[float], accepted: set[str], counts: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /api/v1/alerts HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n")
    n, previous = 0, None
    try:
        while time.monotonic() < deadline:
            if previous and args.redeliver and n % args.redeliver == 0:
                body, keys = previous
                counts["redelivered"] += len(keys)
            else:
                body, keys = notification(index, n, args.alerts_per_post, args.services)
            n += 1
            started = time.perf_counter()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            if 200 <= status < 300:
                accepted.update(keys)
                counts["posts_ok"] += 1
            else:
                counts[f"http_{status}"] = counts.get(f"http_{status}", 0) + 1
            previous = (body, keys)
    finally:
        writer.close()


async def storm(port: int, args: argparse.Namespace) -> tuple[list[float], set[str], dict,
                                                                float]:
    latencies: list[float] = []
    accepted: set[str] = set()
    counts = {"posts_ok": 0, "redelivered": 0}
    started = time.monotonic()
    deadline = started + args.seconds
    await asyncio.gather(*(client(i, port, deadline, args, latencies, accepted, counts)
                           for i in range(args.clients)))
    return latencies, accepted, counts, time.monotonic() - started


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--alerts-per-post", type=int, default=1)
    parser.add_argument("--services", type=int, default=4)
    parser.add_argument("--redeliver", type=int, default=10,
                        help="every Nth POST repeats the previous one (0: never)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gameday-storm-"))
    subprocess.run([sys.executable, "-m", "gameday", "init", str(work)], check=True,
                   stdout=subprocess.DEVNULL)
    (work / "runbooks" / "storm-ack.yml").write_text(RUNBOOK)
    port = free_port()
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "gameday", "serve", "--port", str(port)],
                              cwd=work, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("gameday serve did not start") from None
                time.sleep(0.05)
        rss_before = rss_kib(server.pid, "VmRSS")
        latencies, accepted, counts, elapsed = asyncio.run(storm(port, args))
        peak = rss_kib(server.pid, "VmHWM")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)

    db = sqlite3.connect(work / ".gameday" / "gameday.db")
    stored = {key for (key,) in db.execute("SELECT key FROM alert_instances")}
    rows = db.execute("SELECT COUNT(*) FROM alert_instances").fetchone()[0]
    runs = db.execute("SELECT status, COUNT(*) FROM runbook_runs GROUP BY status").fetchall()
    coalesced = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'runbook.coalesced'"
                           ).fetchone()[0]
    lost = len(accepted - stored)

    lat = sorted(latencies)
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: 0)
    print(f"alert storm: {args.clients} keep-alive clients, {args.alerts_per_post} alert(s) "
          f"per POST, {args.services} services, {elapsed:.1f} s")
    print(f"  accepted   {len(accepted):>8} distinct instances  "
          f"{len(accepted) / elapsed:8.0f} /s   ({counts['posts_ok']} POSTs, "
          f"{counts['redelivered']} instances redelivered)")
    print(f"  latency    p50 {p(0.50):6.1f} ms   p99 {p(0.99):6.1f} ms   "
          f"mean {statistics.fmean(lat) * 1000 if lat else 0:6.1f} ms")
    refused = {k: v for k, v in counts.items() if k.startswith("http_")}
    print(f"  lost       {lost}   (stored {len(stored)}, duplicates stored {rows - len(stored)}"
          f"{', refused ' + str(refused) if refused else ''})")
    print(f"  runs       {dict(runs)}   runbook.coalesced events {coalesced}")
    print(f"  server RSS {rss_before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB")
    return 0 if lost == 0 and accepted else 1


if __name__ == "__main__":
    sys.exit(main())
