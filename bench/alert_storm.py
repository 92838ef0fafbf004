"""An alert storm against ``gameday serve``, then the same storm against ansible-rulebook:
how many alert instances per second each takes, how fast each answers, and for gameday
whether any accepted instance is lost and how much memory it needs.

A fresh project gets one automatic runbook (a single debug task) linked from the
storm's alert. ``--clients`` keep-alive connections POST Alertmanager notifications
(version "4") of ``--alerts-per-post`` distinct alert instances each, for
``--seconds``, spread over ``--services`` services (one alert group each); every
``--redeliver``-th POST repeats the connection's previous notification, as
Alertmanager does when it is not sure a delivery arrived. Afterwards gameday's store
is read directly:

- lost:     instances answered 2xx that are not in the store (must be 0);
- dupes:    instances stored twice (must be 0: a redelivery is not a new instance);
- runs:     runbook runs started (coalescing: one per service while the first is
            queued or running, and none again within the window after it succeeded).

ansible-rulebook then gets the very same clients and payloads, one tool after the
other on an otherwise idle machine: its ``eda.builtin.webhook`` source, one rule on
the storm's alert throttled ``once_within`` the coalescing window, grouped by the
service label gameday coalesces on, running the same playbook (``run_playbook``).
ansible-rulebook keeps events in memory only, so what can be lost cannot be read
anywhere: for it, "accepted" counts the instances it answered 2xx, which means its
webhook put the event on its rule set's in-memory source queue (one deep); it is not
a promise that the event survives a crash. Its playbook runs are counted in its output.

Prints, for each tool, accepted instances/s, POST latency p50/p99, the runs and the
server's peak RSS (VmHWM), then the ratios gameday / ansible-rulebook. The load comes
from one asyncio process on the same machine, so the figures are a floor.

``--postgres`` runs gameday on a throwaway PostgreSQL server (Debian's, started as
the tests start it: ``tests/pg.py``, which turns fsync off) instead of SQLite.
``--intake`` is ``gameday serve --intake``: where alerts are recorded (auto: its writer
process on SQLite, a thread on PostgreSQL); the server's CPU counts its children's.
``--profile FILE`` samples every thread of ``gameday serve`` during the storm and
writes where its time went (stages, hottest functions, CPU per thread) to FILE.

    .venv/bin/python bench/alert_storm.py [--seconds 30] [--clients 16]
        [--alerts-per-post 1] [--services 4] [--redeliver 10]
        [--only gameday|ansible-rulebook] [--postgres] [--intake auto|process|thread]
        [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gameday.targets.sandbox.supervisor import free_port  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
COALESCE = "5 minutes"  # gameday serve's default --coalesce-window, as ansible-rulebook says it
PLAYBOOK = "storm-ack.yml"
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


# -- the storm: the same clients for both tools ------------------------------------------
@dataclass
class Storm:
    """What one tool's storm measured, as its clients saw it."""

    tool: str
    latencies: list[float] = field(default_factory=list)
    accepted: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    client_cpu: float = 0.0  # seconds the clients (this process) spent on the CPU
    server_cpu: float = 0.0  # seconds the server process spent on the CPU meanwhile

    def percentile(self, q: float) -> float:
        """In milliseconds."""
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0

    @property
    def rate(self) -> float:
        return len(self.accepted) / self.elapsed if self.elapsed else 0.0


async def client(index: int, port: int, path: str, deadline: float, args: argparse.Namespace,
                 storm: Storm) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n")
    n, previous = 0, None
    try:
        while time.monotonic() < deadline:
            if previous and args.redeliver and n % args.redeliver == 0:
                body, keys = previous
                storm.counts["redelivered"] += len(keys)
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
            storm.latencies.append(time.perf_counter() - started)
            status = int(status_line.split()[1])
            if 200 <= status < 300:
                storm.accepted.update(keys)
                storm.counts["posts_ok"] += 1
            else:
                storm.counts[f"http_{status}"] += 1
            previous = (body, keys)
    finally:
        writer.close()


async def run_storm(tool: str, port: int, path: str, args: argparse.Namespace) -> Storm:
    storm = Storm(tool)
    started, cpu = time.monotonic(), time.process_time()
    deadline = started + args.seconds
    await asyncio.gather(*(client(i, port, path, deadline, args, storm)
                           for i in range(args.clients)))
    storm.elapsed = time.monotonic() - started
    storm.client_cpu = time.process_time() - cpu
    return storm


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started that still run, and theirs."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def cpu_seconds(pid: int) -> float:
    """User and system time of process ``pid`` so far, with its children's: those it
    has waited for, and those still running (gameday's writer process, the playbooks
    either tool runs)."""
    total = 0
    for each in (pid, *descendants(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def writer_pid(pid: int) -> int | None:
    """gameday serve's writer process (``gameday.web.writer``), if it runs one."""
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if b"gameday.web.writer" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
    return None


def measured(tool: str, pid: int, port: int, path: str, args: argparse.Namespace) -> Storm:
    """The storm against the server ``pid``, with the CPU the server spent on it."""
    before = cpu_seconds(pid)
    storm = asyncio.run(run_storm(tool, port, path, args))
    storm.server_cpu = cpu_seconds(pid) - before
    return storm


def rss_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def until(check: Callable[[], bool], timeout: float, what: str,
          proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.05)


def healthy(port: int) -> bool:
    try:
        return bool(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                           timeout=1).status == 200)
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def child_env(**extra: str) -> dict[str, str]:
    """This checkout's code for every child, whatever the venv's editable install says."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


# -- gameday serve ---------------------------------------------------------------------------
@dataclass
class Gameday:
    storm: Storm
    lost: int
    stored: int
    dupes: int
    runs: dict[str, int]
    coalesced: int
    rss_before: int
    rss_peak: int
    writer_peak: int  # its writer process's (0: none, --intake thread)
    page: Page | None = None  # the storm's incident page, read after the storm


@dataclass
class Page:
    """The incident page of the storm's largest incident, as a person opens it at 3am:
    how long it took, and the longest ``/healthz`` answer meanwhile (how long the
    server stopped answering Alertmanager while it read the timeline)."""

    incident_id: int
    events: int
    seconds: float
    stall_ms: float


@contextmanager
def store_url(work: Path, postgres: bool) -> Iterator[str]:
    """Where gameday serve keeps its store: the project's SQLite file, or a database in
    a throwaway PostgreSQL server."""
    if not postgres:
        yield str(work / ".gameday" / "gameday.db")
        return
    sys.path.insert(0, str(ROOT / "tests"))
    import pg

    if not pg.available():
        raise SystemExit(f"--postgres: no PostgreSQL binaries in {pg.BIN}")
    server = pg.Postgres()
    try:
        yield server.database()
    finally:
        server.stop()


def queried(url: str, *queries: str) -> list[list[tuple]]:
    """Each query's rows, read straight from gameday's store (SQLite or PostgreSQL)."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            return [conn.execute(q).fetchall() for q in queries]
    db = sqlite3.connect(url)
    try:
        return [db.execute(q).fetchall() for q in queries]
    finally:
        db.close()


def read_store(url: str) -> tuple[set[str], int, dict[str, int], int]:
    """Distinct instance keys, instance rows, runs by status, runbook.coalesced events."""
    keys, rows, runs, coalesced = queried(
        url, "SELECT key FROM alert_instances", "SELECT COUNT(*) FROM alert_instances",
        "SELECT status, COUNT(*) FROM runbook_runs GROUP BY status",
        "SELECT COUNT(*) FROM events WHERE kind = 'runbook.coalesced'")
    return {key for (key,) in keys}, rows[0][0], dict(runs), coalesced[0][0]


def largest_incident(url: str) -> tuple[int, int]:
    """The incident with the most events, and how many it has."""
    ((row, *_),) = queried(url, "SELECT incident_id, COUNT(*) FROM events"
                                " GROUP BY incident_id ORDER BY 2 DESC LIMIT 1")
    return int(row[0]), int(row[1])


def timed_get(port: int, path: str) -> tuple[float, float]:
    """GET ``path`` from gameday serve as a person opens it, while another thread asks
    ``/healthz`` again and again: the seconds it took, and the longest ``/healthz``
    answer meanwhile in ms (how long the server stopped answering Alertmanager)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    done, stalls = threading.Event(), [0.0]

    def probe() -> None:
        while not done.is_set():
            t = time.perf_counter()
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=60).read()
            stalls[0] = max(stalls[0], time.perf_counter() - t)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            answer.read()
    finally:
        seconds = time.perf_counter() - t
        done.set()
        prober.join(60)
    return seconds, stalls[0] * 1e3


def open_page(port: int, url: str) -> Page:
    """The largest incident's page (``timed_get``)."""
    incident_id, count = largest_incident(url)
    return Page(incident_id, count, *timed_get(port, f"/incidents/{incident_id}"))


def storm_gameday(args: argparse.Namespace) -> Gameday:
    work = Path(tempfile.mkdtemp(prefix="gameday-storm-"))
    subprocess.run([sys.executable, "-m", "gameday", "init", str(work)], check=True,
                   stdout=subprocess.DEVNULL, env=child_env())
    (work / "runbooks" / PLAYBOOK).write_text(RUNBOOK)
    # The storm measures automatic remediation, as ansible-rulebook's rule runs its
    # playbook: the project lets its automatic runbook run without a game day's proof
    # (``gameday init`` writes require = "proven", which would hold every run).
    toml = work / "gameday.toml"
    toml.write_text(toml.read_text().replace('require = "proven"', 'require = "any"'))
    port = free_port()
    with store_url(work, args.postgres) as url:
        serve = ["serve", "--port", str(port), "--intake", args.intake]
        command = ([sys.executable, __file__, "--sampled", str(args.profile), *serve]
                   if args.profile else [sys.executable, "-m", "gameday", *serve])
        server = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL,
                                  env=child_env(GAMEDAY_TOKEN=TOKEN, GAMEDAY_DB=url))
        try:
            until(lambda: healthy(port), 60, "gameday serve", server)
            rss_before = rss_kib(server.pid, "VmRSS")
            storm = measured("gameday serve", server.pid, port, "/api/v1/alerts", args)
            peak = rss_kib(server.pid, "VmHWM")
            writer = writer_pid(server.pid)
            writer_peak = rss_kib(writer, "VmHWM") if writer else 0
            page = open_page(port, url)
        finally:
            stop(server)
        stored, rows, runs, coalesced = read_store(url)
    shutil.rmtree(work, ignore_errors=True)
    return Gameday(storm, lost=len(storm.accepted - stored), stored=len(stored),
                   dupes=rows - len(stored), runs=runs, coalesced=coalesced,
                   rss_before=rss_before, rss_peak=peak, writer_peak=writer_peak, page=page)


# -- ansible-rulebook ------------------------------------------------------------------------
@dataclass
class Rulebook:
    storm: Storm
    runs: int
    rss_before: int
    rss_peak: int
    version: str


def rulebook_yaml(port: int, playbook: Path) -> str:
    """One rule on the storm's alert, throttled per service as gameday coalesces, running
    the same playbook with the service as its parameter."""
    return json.dumps([{
        "name": "alert storm", "hosts": "all",
        "sources": [{"eda.builtin.webhook": {"host": "127.0.0.1", "port": port,
                                             "token": TOKEN}}],
        "rules": [{
            "name": "acknowledge a storm",
            "condition": 'event.payload.commonLabels.alertname == "StormAlert"',
            "throttle": {"once_within": COALESCE,
                         "group_by_attributes": ["event.payload.groupLabels.service"]},
            "action": {"run_playbook": {
                "name": str(playbook),
                "extra_vars": {"service": "{{ event.payload.groupLabels.service }}"}}}}]}],
        indent=2)


def storm_rulebook(args: argparse.Namespace) -> Rulebook:
    from runbook_latency import EDA_VENV, ensure_eda

    binary = ensure_eda()
    work = Path(tempfile.mkdtemp(prefix="gameday-storm-eda-"))
    playbook = work / PLAYBOOK
    playbook.write_text(RUNBOOK)
    port = free_port()
    (work / "rulebook.yml").write_text(rulebook_yaml(port, playbook))
    (work / "inventory.yml").write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local"}}}}))
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True
                             ).stdout.split("\n")[0].strip()
    log = work / "rulebook.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(binary), "--rulebook", "rulebook.yml", "-i", "inventory.yml"], cwd=work,
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{EDA_VENV / 'bin'}{os.pathsep}{os.environ['PATH']}"})
        try:
            until(lambda: listening(port), 120, "ansible-rulebook's webhook", server)
            rss_before = rss_kib(server.pid, "VmRSS")
            storm = measured("ansible-rulebook", server.pid, port, "/endpoint", args)
            peak = rss_kib(server.pid, "VmHWM")
            time.sleep(3)  # the throttled playbooks finish
        finally:
            stop(server)
    runs = log.read_text(errors="replace").count("PLAY RECAP")
    shutil.rmtree(work, ignore_errors=True)
    return Rulebook(storm, runs=runs, rss_before=rss_before, rss_peak=peak, version=version)


# -- the report ------------------------------------------------------------------------------
def print_storm(storm: Storm) -> None:
    print(f"  accepted   {len(storm.accepted):>8} distinct instances  {storm.rate:8.0f} /s   "
          f"({storm.counts['posts_ok']} POSTs, {storm.counts['redelivered']} instances "
          "redelivered)")
    mean = statistics.fmean(storm.latencies) * 1000 if storm.latencies else 0
    print(f"  latency    p50 {storm.percentile(0.50):6.1f} ms   "
          f"p99 {storm.percentile(0.99):6.1f} ms   mean {mean:6.1f} ms")
    posts = max(len(storm.latencies), 1)
    print(f"  CPU        server {storm.server_cpu / storm.elapsed:.0%} of a core, "
          f"{storm.server_cpu / posts * 1e6:.0f} us per POST; "
          f"the clients {storm.client_cpu / storm.elapsed:.0%} of a core")


def refused(storm: Storm) -> str:
    codes = {k: v for k, v in storm.counts.items() if k.startswith("http_")}
    return f", refused {codes}" if codes else ""


def report(args: argparse.Namespace, g: Gameday | None, r: Rulebook | None) -> None:
    print(f"alert storm: {args.clients} keep-alive clients, {args.alerts_per_post} alert(s) "
          f"per POST, {args.services} services, {args.seconds:.0f} s per tool, one after "
          f"the other; load average {Path('/proc/loadavg').read_text().strip()}")
    if g:
        intake = args.intake if args.intake != "auto" else \
            "thread" if args.postgres else "process"
        print(f"gameday serve ({'PostgreSQL' if args.postgres else 'SQLite'}; --intake {intake})")
        print_storm(g.storm)
        print(f"  lost       {g.lost}   (stored {g.stored}, duplicates stored {g.dupes}"
              f"{refused(g.storm)})")
        print(f"  runs       {g.runs}   runbook.coalesced events {g.coalesced}")
        print(f"  server RSS {g.rss_before / 1024:.0f} MiB before, "
              f"peak {g.rss_peak / 1024:.0f} MiB"
              + (f"; its writer process's peak {g.writer_peak / 1024:.0f} MiB"
                 if g.writer_peak else ""))
        if g.page:
            print(f"  page       /incidents/{g.page.incident_id} ({g.page.events} events) "
                  f"in {g.page.seconds:.2f} s; /healthz meanwhile at most "
                  f"{g.page.stall_ms:.0f} ms")
    if r:
        print(f"ansible-rulebook ({r.version}; eda.builtin.webhook, throttle once_within "
              f"{COALESCE} by service)")
        print_storm(r.storm)
        print(f"  lost       not measurable: events are kept in memory only; accepted "
              f"counts 2xx answers (the event was on its source queue){refused(r.storm)}")
        print(f"  runs       {r.runs} playbook runs (PLAY RECAP in its output)")
        print(f"  server RSS {r.rss_before / 1024:.0f} MiB before, "
              f"peak {r.rss_peak / 1024:.0f} MiB (its JVM included)")
    if g and r and r.storm.rate:
        print(f"gameday / ansible-rulebook: accepted {g.storm.rate / r.storm.rate:.2f}x, "
              f"p50 {g.storm.percentile(0.5) / max(r.storm.percentile(0.5), 1e-9):.2f}x, "
              f"p99 {g.storm.percentile(0.99) / max(r.storm.percentile(0.99), 1e-9):.2f}x "
              "(latency: lower is better)")


# -- --profile: gameday serve with a sampling thread -----------------------------------------
SAMPLE_EVERY_S = 0.002


def stage(stack: list[FrameType]) -> str:
    """What a thread was doing, from its stack (innermost frame first): the statement it
    waited on, the layer its Python time was in, or nothing at all."""
    files = [f.f_code.co_filename for f in stack]
    names = [f.f_code.co_name for f in stack]
    top_file, top = files[0], names[0]
    if top in ("get", "wait", "_wait_for_tstate_lock", "select", "poll") and (
            "queue" in top_file or "threading" in top_file or "selectors" in top_file):
        return "idle (waiting for work)"
    if top in ("_work", "_gather") and top_file.endswith("runs/intake.py"):
        return "idle (the writer waiting for notifications)"
    if top_file.endswith("asyncio/runners.py") or top in ("run_forever", "_run_once"):
        # no Python frame above the loop: waiting, or in uvloop's and httptools' C code
        return "event loop: waiting, or in C (uvloop, httptools)"
    for frame in stack:
        if frame.f_code.co_name in ("execute", "executemany", "_run") and \
                "gameday/store/base.py" in frame.f_code.co_filename:
            sql = str(frame.f_locals.get("sql", "")).split()
            what = " ".join(sql[:3] if sql[:1] == ["INSERT"] else sql[:1])
            driver = top in ("_run", "do_execute", "do_executemany", "execute")
            return f"SQL {what}: {'driver' if driver else 'SQLAlchemy and wrapping'}"
    layers = (("json/", "JSON decode/encode"), ("gameday/runs/alerts.py", "payload checks"),
              ("gameday/people/auth", "auth"), ("gameday/web/context", "auth and body"),
              ("gameday/runs/intake", "intake decisions (Python)"),
              ("gameday/runbooks/routing", "routing"), ("gameday/runbooks/", "runbooks"),
              ("gameday/runs/", "runs and targets"), ("gameday/incidents/", "incident"),
              ("gameday/core/", "events, settings"), ("gameday/store/", "store (Python)"),
              ("concurrent/futures", "futures, handing over"),
              ("starlette/", "Starlette"), ("httptools_impl", "HTTP (uvicorn, httptools)"),
              ("uvicorn/", "uvicorn"), ("asyncio/", "asyncio"), ("pathlib", "pathlib"))
    for f in files:
        for needle, name in layers:
            if needle in f:
                return name
    return f"other ({Path(top_file).name}:{top})"


class Sampler:
    """Every ``SAMPLE_EVERY_S``, every other thread's stack: by thread, the stage it was
    in and its innermost function."""

    def __init__(self) -> None:
        self.stages: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.tops: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.cpu: dict[str, float] = {}  # CPU seconds by thread, read every half second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        me = threading.get_ident()
        rounds = 0
        while not self._stop.wait(SAMPLE_EVERY_S):
            rounds += 1
            if rounds % 250 == 0:
                self.cpu.update(thread_cpu())
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack: list[FrameType] = []
                walk: FrameType | None = frame
                while walk is not None:
                    stack.append(walk)
                    walk = walk.f_back
                thread = names.get(ident, str(ident)).split("_")[0]
                self.stages[thread][stage(stack)] += 1
                code = stack[0].f_code
                where = "/".join(Path(code.co_filename).parts[-2:])
                self.tops[thread][f"{where}:{code.co_name}"] += 1

    def write(self, out: Path) -> None:
        self._stop.set()
        self._thread.join()
        lines = [f"sampled every {SAMPLE_EVERY_S * 1000:.0f} ms; CPU seconds by thread: "
                 + ", ".join(f"{name} {cpu:.1f}" for name, cpu in self.cpu.items())]
        for thread, stages in sorted(self.stages.items(), key=lambda kv: -kv[1].total()):
            total = stages.total()
            if total < 50:
                continue
            lines.append(f"\n== thread {thread}: {total} samples")
            for name, n in stages.most_common(25):
                lines.append(f"  {100 * n / total:5.1f}%  {name}")
            lines.append("  -- innermost functions")
            for name, n in self.tops[thread].most_common(15):
                lines.append(f"  {100 * n / total:5.1f}%  {name}")
        out.write_text("\n".join(lines) + "\n")


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process's threads, by Python name (the pool
    threads of one kind summed)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    cpu: Counter[str] = Counter()
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        name = names.get(int(task.name), "other").split("_")[0]
        cpu[name] += (int(fields[11]) + int(fields[12])) / tick
    return dict(cpu)


def sampled(out: Path, argv: list[str]) -> None:
    """Run ``gameday ARGV`` in this process, sampled, and write the profile at its end."""
    import runpy

    sampler = Sampler()
    sampler.start()
    # uvicorn stops on SIGTERM, then raises it again under the handler it found: this one
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sys.argv = ["gameday", *argv]
    try:
        runpy.run_module("gameday", run_name="__main__", alter_sys=True)
    finally:
        sampler.write(out)


def main() -> int:
    if sys.argv[1:2] == ["--sampled"]:
        sampled(Path(sys.argv[2]), sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--alerts-per-post", type=int, default=1)
    parser.add_argument("--services", type=int, default=4)
    parser.add_argument("--redeliver", type=int, default=10,
                        help="every Nth POST repeats the previous one (0: never)")
    parser.add_argument("--only", choices=["gameday", "ansible-rulebook"],
                        help="storm one tool only")
    parser.add_argument("--postgres", action="store_true",
                        help="gameday on a throwaway PostgreSQL server, not SQLite")
    parser.add_argument("--intake", choices=["auto", "process", "thread"], default="auto",
                        help="gameday serve --intake: where alerts are recorded")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="sample gameday serve's threads (its writer process's too with "
                             "--intake thread, which puts them in the server's); where the "
                             "time went, to FILE")
    args = parser.parse_args()
    if args.profile:
        args.profile = args.profile.resolve()

    g = storm_gameday(args) if args.only in (None, "gameday") else None
    r = storm_rulebook(args) if args.only in (None, "ansible-rulebook") else None
    report(args, g, r)
    if g and args.profile:
        print(f"profile of gameday serve: {args.profile}")
    return 0 if g is None or (g.lost == 0 and g.storm.accepted) else 1


if __name__ == "__main__":
    sys.exit(main())
