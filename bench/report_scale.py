"""``gameday report`` at scale: 100,000 incidents and 2,000,000 events, answered in at
most 0.8 s on SQLite and a second on PostgreSQL?

Builds a store (once; ``--rebuild`` builds it again) with a year of history: game days
of eight scenarios (a tenth of them drills), and real incidents from alerts, 20
timeline events each on average, like the sandbox's own game days (fault, alert,
declaration, pages, roles, comms, a runbook run with its tasks, mitigation, rollback,
resolution, verdict), plus a runbook run per incident and two action items per game day.
Rows are written straight into the store's tables (a game day takes seconds; this
many would take days), with the store's own schema and indexes. Each incident is
written with the last ``seq`` of its timeline, as the events' trigger keeps it: left to
the trigger, one bulk transaction would raise it twenty times an incident, and
PostgreSQL would keep every version (61,200 pages for 100,000 incidents, twenty times
what they take when events arrive one transaction at a time, as in use).

Then times the report the way ``gameday report --json`` builds it (a fresh
connection, the runbooks and alert rules on disk, JSON out), ``--repeat`` times, and
prints each run's time, split into its stages (``facts``: the fact rows read, after
deriving any that changed; ``percentiles``: every p50/p90; ``figures``: the rest;
``json``), then the median and the worst, between two floor lines measured before and
after them (``floors``: the fact rows read by the driver alone, and sorting as much as
the percentiles sort), for the machine's speed moves from hour to hour. Before them
the kept facts are brought in step (``incident_facts.refresh``: every incident after
``--rebuild``, none when warm), timed apart; ``--touch N`` then adds an event to N
incidents and times one more report, which derives those again (a report after a
busy day).

    .venv/bin/python bench/report_scale.py [--incidents 100000] [--events 2000000]
        [--db /tmp/gameday-report-scale.db] [--rebuild] [--repeat 5] [--since 30d]
        [--touch 1000] [--postgres]

``--postgres`` builds the same store in a throwaway PostgreSQL server (Debian's, as
the tests start it: ``tests/pg.py``) and times the same report over it.

``--pages`` then serves the store (``gameday serve`` in a fresh project) and opens the
pages people open over a year of history, each while another thread asks ``/healthz``
again and again (``alert_storm.timed_get``): the incident list (newest, a page in the
middle, real incidents only), one incident, and the insights page (then again, from
its cache). It prints how long each took and the longest ``/healthz`` answer
meanwhile: how long Alertmanager would have waited.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gameday.report import facts as incident_facts  # noqa: E402
from gameday.report import insights  # noqa: E402
from gameday.report.objectives import scenario_targets  # noqa: E402
from gameday.store import Store  # noqa: E402

SCENARIOS = [  # scenario file, service, team, runbook that contains it (None: wrong link)
    ("checkout-replica-crash", "checkout", "shop-checkout", "restart-replica"),
    ("checkout-bad-deploy", "checkout", "shop-checkout", "rollback-release"),
    ("checkout-bad-deploy-wrong-runbook", "checkout", "shop-checkout", None),
    ("fraud-dependency-slowdown", "fraud", "shop-risk", "disable-flag"),
    ("kwok-frontend-scaled-to-zero", "frontend", "shop-web", "k8s-scale-deployment"),
    ("kwok-frontend-release-unschedulable", "frontend", "shop-web", "k8s-rollout-undo"),
    ("kwok-nodes-cordoned", "frontend", "platform", "k8s-uncordon-nodes"),
    ("kwok-nodes-drained", "frontend", "platform", "k8s-uncordon-nodes"),
]
SERVICES = [("payments", "shop-payments"), ("checkout", "shop-checkout"),
            ("search", "shop-web"), ("frontend", "shop-web")]
SEVERITIES = ["SEV-1", "SEV-2", "SEV-2", "SEV-3", "SEV-4"]
PEOPLE = ["ana", "ben", "chidi", "dana", "eli", "fay"]


def ev(kind: str, t_s: float, data: dict, actor: str = "gameday") -> tuple:
    return (kind, t_s, actor, json.dumps(data, sort_keys=True))


def gameday_events(rng: random.Random, scenario: tuple, drill: bool) -> list[tuple]:
    name, service, team, runbook = scenario
    ttd, tta = rng.uniform(1, 8), rng.uniform(0.01, 3 if not drill else 90)
    ttm = ttd + tta + rng.uniform(3, 40)
    declared = rng.choice(SEVERITIES[:4])
    measured = declared if rng.random() < 0.8 else rng.choice(SEVERITIES[:3])
    rb = runbook or "restart-replica"
    contained = runbook is not None and rng.random() < 0.9
    out = [
        ev("target.ready", -20, {"target": "sandbox"}),
        ev("steady_state.reached", -10, {"sli": {"success_ratio": 1.0, "p99_ms": 40}}),
        ev("fault.injected", 0, {"activity": "kill", "status": "succeeded",
                                 "provider": {"module": "m", "func": "f", "arguments": {}},
                                 "took_s": 0.1}),
        ev("impact.started", 0.2, {"status": 502, "latency_ms": 3.0}),
        ev("alert.fired", ttd, {"alertname": "Burn", "labels": {"service": service,
                                                                "team": team},
                                "annotations": {}}),
        ev("incident.declared", ttd + 0.05, {"severity": declared, "alert": "Burn",
                                             "measured_severity": measured,
                                             "model": rng.choice(["hybrid", "centralized",
                                                                  "distributed"]),
                                             "mode": "drill" if drill else "auto"}),
        ev("page.sent", ttd + 0.06, {"person": "ana", "role": "incident_commander"}),
        ev("page.sent", ttd + 0.07, {"person": "chidi", "role": "incident_commander"}),
        ev("incident.acknowledged", ttd + tta, {"via": "auto"}, "ana"),
        ev("role.assigned", ttd + tta + 0.01, {"role": "incident_commander",
                                               "person": "chidi"}, "chidi"),
        ev("role.assigned", ttd + tta + 0.02, {"role": "scribe", "person": "eli"}, "chidi"),
        ev("role.assigned", ttd + tta + 0.03, {"role": "comms_lead", "person": "fay"},
           "chidi"),
        ev("comms.posted", ttd + tta + rng.uniform(0.1, 5), {"audience": "internal",
                                                            "text": "on it",
                                                            "final": False}, "fay"),
        ev("runbook.queued", ttd + tta + 0.1, {"runbook": rb, "run_id": 0}),
        ev("runbook.started", ttm - 2.5 if contained else ttm + 1,
           {"runbook": rb, "params": {"service": service}, "check": False}),
        ev("runbook.task", ttm - 2, {"runbook": rb, "task": "restart", "status": "ok"}),
        ev("runbook.finished", ttm - 1.5 if contained else ttm + 2,
           {"runbook": rb, "status": "successful", "rc": 0}),
        ev("mitigated", ttm, {"requests": 400, "bad_requests": rng.randint(5, 200)}),
        ev("fault.rolled_back", ttm + 1 if contained else ttm - 0.5,
           {"activity": "undo", "status": "succeeded"}),
        ev("incident.resolved", ttm + rng.uniform(2, 20), {"how": "SLIs back"}, "chidi"),
    ]
    if not contained:
        out.insert(-3, ev("incident.escalated", ttm - 1, {"reason": "timed out",
                                                          "runbook": rb}))
    status, why = (("passed", {}) if contained else
                   ("deviated", {"steady state after the fault": "the experiment deviated"}))
    out.append(ev("gameday.verdict", ttm + 25, {"status": status, "exit_code": 0 if contained
                                                else 3, "failed": list(why), "why": why,
                                                "skipped": []}))
    return out


def alert_events(rng: random.Random, service: str, team: str) -> list[tuple]:
    tta = rng.lognormvariate(4, 1)  # seconds to minutes
    out = [ev("alert.fired", 0, {"alertname": f"{service.title()}Down",
                                 "labels": {"service": service, "team": team},
                                 "annotations": {}}, "alertmanager"),
           ev("incident.declared", 0.01, {"severity": rng.choice(SEVERITIES),
                                          "alert": "Down"}, "alertmanager"),
           ev("incident.acknowledged", tta, {"via": "pager"}, rng.choice(PEOPLE))]
    t = tta
    for n in range(17):  # the alert storm, notes and runbook tasks
        t += rng.uniform(1, 30)
        out.append(ev("alert.fired" if n < 10 else "note.added", t,
                      {"alertname": "Down", "labels": {"service": service}} if n < 10
                      else {"text": "looking"}, "alertmanager"))
    return out


def build(path: Path | str, incidents: int, events: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    store = Store(path)
    db = insights.connection(store)
    runs_dir = Path(tempfile.mkdtemp(prefix="report-scale-runs-"))
    run_dirs = {}
    for name, *_ in SCENARIOS:
        d = runs_dir / name
        d.mkdir()
        shutil.copy(ROOT / "scenarios" / f"{name}.yaml", d / "scenario.yaml")
        run_dirs[name] = str(d)
    start = datetime.now(UTC) - timedelta(days=365)
    per = events / incidents
    db.execute("BEGIN")
    inc_rows, ev_rows, run_rows, action_rows = [], [], [], []
    written = 0
    for i in range(1, incidents + 1):
        at = start + timedelta(days=365 * i / incidents)
        created = at.isoformat(timespec="microseconds")
        want = round(per * i) - written  # the target average: 20 events an incident
        if rng.random() < 0.7:
            sc = rng.choice(SCENARIOS)
            timeline = gameday_events(rng, sc, drill=rng.random() < 0.1)
            name, service = sc[0], sc[1]
            severity = next(json.loads(e[3])["severity"] for e in timeline
                            if e[0] == "incident.declared")
            row = (i, f"Game day: {name}", service, name, run_dirs[name], "resolved",
                   severity, created, created)
            run_rows.append((i, sc[3] or "restart-replica", "{}", 0, "gameday",
                             "successful" if rng.random() < 0.97 else "failed", 0, created,
                             created, created))
            for key, owner in (("f1", rng.choice(PEOPLE)), ("f2", rng.choice(PEOPLE))):
                action_rows.append((i, key, "fix it", owner,
                                    (at + timedelta(days=14)).date().isoformat(),
                                    "done" if rng.random() < 0.6 else "open", created))
        else:
            service, team = rng.choice(SERVICES)
            timeline = alert_events(rng, service, team)
            timeline = timeline[:max(3, want)]  # real incidents absorb the difference
            row = (i, f"{service} down", service, None, None, "resolved",
                   json.loads(timeline[1][3])["severity"], created, created)
        timeline += [ev("note.added", 999, {"text": "later"})] * max(0, want - len(timeline))
        inc_rows.append((*row, len(timeline)))  # its last seq, as the events' trigger keeps it
        base = int(at.timestamp() * 1e9)
        for seq, (kind, t_s, actor, data) in enumerate(timeline, start=1):
            ev_rows.append((i, seq, created, base + int(t_s * 1e9), kind, actor, data))
        written += len(timeline)
        if i % 20000 == 0 or i == incidents:
            db.executemany("INSERT INTO incidents (id, title, service, scenario, run_dir,"
                           " state, severity, created_at, updated_at, last_seq) VALUES"
                           " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", inc_rows)
            db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", ev_rows)
            db.executemany("INSERT INTO runbook_runs (incident_id, runbook, params_json,"
                           " check_mode, started_by, status, rc, created_at, started_at,"
                           " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
            db.executemany("INSERT INTO action_items (incident_id, key, title, owner, due,"
                           " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", action_rows)
            inc_rows, ev_rows, run_rows, action_rows = [], [], [], []
            print(f"  {i} incidents, {written} events", file=sys.stderr)
    db.execute("COMMIT")
    db.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir())
                        / "gameday-report-scale.db")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--since", help="also time a windowed report (30d, say)")
    parser.add_argument("--touch", type=int, default=0, metavar="N",
                        help="then add an event to N incidents and time one more report")
    parser.add_argument("--postgres", action="store_true",
                        help="build and report in a throwaway PostgreSQL server instead")
    parser.add_argument("--pages", action="store_true",
                        help="then time the pages people open over the store, served")
    parser.add_argument("--within", type=float, default=None, metavar="SECONDS",
                        help="the target for the worst run (0.8 s on SQLite, 1 s on"
                             " PostgreSQL)")
    args = parser.parse_args()
    if args.within is None:
        args.within = 1.0 if args.postgres else 0.8

    if args.postgres:
        sys.path.insert(0, str(ROOT / "tests"))
        import pg

        server = pg.Postgres()
        try:
            args.db = server.database()
            print(f"building {args.incidents} incidents, {args.events} events in "
                  "PostgreSQL", file=sys.stderr)
            t = time.perf_counter()
            build(args.db, args.incidents, args.events)
            print(f"built in {time.perf_counter() - t:.0f} s", file=sys.stderr)
            report(args)
            if args.pages:
                pages(args)
        finally:
            server.stop()
        return
    if args.rebuild or not args.db.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        t = time.perf_counter()
        print(f"building {args.incidents} incidents, {args.events} events in {args.db}",
              file=sys.stderr)
        build(args.db, args.incidents, args.events)
        print(f"built in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    report(args)
    if args.pages:
        pages(args)


def pages(args: argparse.Namespace) -> None:
    """The pages people open over the store, served (``--pages``)."""
    from alert_storm import TOKEN, child_env, healthy, stop, timed_get, until

    from gameday.targets.sandbox.supervisor import free_port

    db = insights.connection(Store(args.db))
    (newest, middle), (incident,) = (
        db.execute("SELECT MAX(id), MAX(id) / 2 FROM incidents").fetchone(),
        db.execute("SELECT id FROM incidents WHERE scenario IS NULL ORDER BY id DESC"
                   " LIMIT 1").fetchone())  # a real incident (the rows carry no kind)
    work = Path(tempfile.mkdtemp(prefix="gameday-pages-"))
    subprocess.run([sys.executable, "-m", "gameday", "init", str(work)], check=True,
                   stdout=subprocess.DEVNULL, env=child_env())
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gameday", "serve", "--port", str(port)],
                              cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=child_env(GAMEDAY_TOKEN=TOKEN, GAMEDAY_DB=str(args.db)))
    try:
        until(lambda: healthy(port), 60, "gameday serve", server)
        print(f"pages, served ({newest} incidents; load average {load_average()}):")
        for label, path in [("incident list, the newest", "/incidents"),
                            ("incident list, a page in the middle", f"/incidents?before={middle}"),
                            ("real incidents only", "/incidents?kind=incident"),
                            ("an incident", f"/incidents/{incident}"),
                            ("insights", "/insights"),
                            ("insights again (its cache)", "/insights")]:
            seconds, stall = timed_get(port, path)
            print(f"  {label:36} {seconds * 1e3:7.0f} ms   /healthz at most {stall:5.0f} ms"
                  f"   {path}")
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace) -> None:
    from gameday.core.settings import current
    from gameday.runbooks.routing import rule_files
    from gameday.runbooks.runbook import discover

    runbooks, rules = discover(current().runbook_dirs), rule_files(current().rules_dirs)
    db0 = insights.connection(Store(args.db))
    n_inc = db0.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
    n_ev = db0.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    print(f"store: {n_inc} incidents, {n_ev} events; load average {load_average()}")
    t = time.perf_counter()
    derived = incident_facts.refresh(Store(args.db), scenario_targets(db0))
    print(f"facts kept in step: {derived} incidents derived from their events in "
          f"{time.perf_counter() - t:.3f} s (all of them after --rebuild; none when warm)")
    print(floors(args.db), flush=True)
    scopes = [("all time", insights.Scope())]
    if args.since:
        scopes.append((f"since {args.since}",
                       insights.Scope(since=insights.parse_since(args.since))))
    for label, scope in scopes:
        times = [timed(args.db, scope, runbooks, rules, f"{label} run {n + 1}")
                 for n in range(args.repeat)]
        print(f"{label}: median {statistics.median(times):.3f} s, worst {max(times):.3f} s "
              f"over {args.repeat} runs"
              f" {'OK' if max(times) <= args.within else f'OVER {args.within} s'}")
    if args.touch:
        touch(args.db, args.touch)
        timed(args.db, insights.Scope(), runbooks, rules,
              f"all time, after new events on {args.touch} incidents")
    print(floors(args.db))
    print(f"load average {load_average()}")


# the report's own read of the fact rows (``incident_facts.table``), nothing after it
FLOOR_SQL = (f"SELECT {', '.join(incident_facts._TABLE)} {incident_facts._LEFT_JOIN}"
             " ORDER BY i.id")


def floors(path: Path | str, sorts: int = 21) -> str:
    """Two floors, measured now: reading the fact rows alone (the same columns, the
    same driver, no Python over them) and sorting 100,000 floats ``sorts`` times (as
    many values as the percentiles sort, in smaller pieces). This machine's speed moves
    by a fifth, and at times by half, from one hour to the next; the report's time over
    these is what compares across runs."""
    rng = random.Random(3)
    values = [rng.expovariate(0.01) for _ in range(100_000)]
    t = time.perf_counter()
    for _ in range(sorts):
        sorted(values)
    sorting = time.perf_counter() - t
    t = time.perf_counter()
    rows = len(Store(path).reader().tuples(FLOOR_SQL))
    reading = time.perf_counter() - t
    return (f"floors: the fact rows read by the driver alone {reading:.3f} s ({rows} rows);"
            f" sorting 100,000 floats {sorts} times {sorting:.3f} s"
            f" (together {reading + sorting:.3f} s)")


def load_average() -> str:
    """The machine's load (1, 5, 15 minutes): other work on the same cores moves every
    figure here."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def timed(path: Path | str, scope: insights.Scope, runbooks: list, rules: list,
          label: str) -> float:
    """One report as ``gameday report --json`` builds it; prints its stages."""
    stages: dict[str, float] = {}
    cpu = time.process_time()
    t0 = time.perf_counter()
    last = [t0]

    def tick(stage: str) -> None:
        now = time.perf_counter()
        stages[stage] = now - last[0]
        last[0] = now

    report = insights.build(Store(path), scope, runbooks=runbooks, rule_files=rules,
                            timer=tick)
    text = insights.dumps(report)
    total = time.perf_counter() - t0
    stages["json"] = time.perf_counter() - last[0]
    cpu = time.process_time() - cpu
    split = ", ".join(f"{stage} {took:.3f} s" for stage, took in stages.items())
    print(f"{label}: {total:.3f} s ({split}; json {len(text) // 1024} KiB;"
          f" {sum(report.counts.values())} incidents; this process's CPU {cpu:.3f} s)")
    return total


def touch(path: Path | str, incidents: int, seed: int = 11) -> None:
    """A note on ``incidents`` random incidents: what a busy day adds between reports."""
    rng = random.Random(seed)
    db = insights.connection(Store(path))
    high = db.execute("SELECT MAX(id) FROM incidents").fetchone()[0]
    db.execute("BEGIN")
    for incident_id in rng.sample(range(1, high + 1), incidents):
        seq = db.execute("SELECT MAX(seq) + 1 FROM events WHERE incident_id = ?",
                         (incident_id,)).fetchone()[0]
        db.execute("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (incident_id, seq, datetime.now(UTC).isoformat(), time.monotonic_ns(),
                    "note.added", "bench", json.dumps({"text": "later"})))
    db.execute("COMMIT")

if __name__ == "__main__":
    main()
