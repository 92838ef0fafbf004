"""Alert storms: group commit, coalescing, per-runbook concurrency, and runs whose
process died. The throughput itself is measured by bench/alert_storm.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from webhooks import AUTH, TOKEN, alert, payload, wait_runs_done, write_runbook

from gameday.core import clock
from gameday.core.errors import GamedayError, NotFound
from gameday.game import recovery
from gameday.incidents.incident import Incident
from gameday.runbooks.runbook import find
from gameday.runs import run as runs
from gameday.runs.alerts import parse
from gameday.runs.intake import Batcher, Delivery, Intake
from gameday.store import Store
from gameday.web.app import create_app
from gameday.web.incidents import timeline_rows


@pytest.fixture
def books(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    write_runbook(d, "restart-it", ["Boom"])
    write_runbook(d, "one-at-a-time", ["Slow"], sleep=1.0)
    return d


def serve_app(tmp_path: Path, books: Path, **options):
    store = Store(tmp_path / "serve.db")
    return create_app(token=TOKEN, store=store, data_dir=tmp_path / "data",
                      runbook_dir=books, **options), store


def fifty(delivery: int) -> dict:
    return payload(*(alert(fingerprint=f"d{delivery}-a{i}", starts=f"2026-11-23T10:{i:02d}:00Z")
                     for i in range(50)))


def kinds(store: Store, incident_id: int) -> list[str]:
    return [e.kind for e in store.events(incident_id)]


# -- coalescing -------------------------------------------------------------------------
def test_three_deliveries_of_fifty_alerts_start_one_run(tmp_path, books):
    app, store = serve_app(tmp_path, books)
    with TestClient(app) as client:
        answers = [client.post("/api/v1/alerts", json=fifty(d), headers=AUTH).json()
                   for d in range(3)]
        (run,) = wait_runs_done(store, 1)
    run_ids = {a["run_id"] for answer in answers for a in answer["alerts"]}
    assert run_ids == {run["id"]} and run["status"] == "successful"
    assert len({answer["incident_id"] for answer in answers}) == 1
    timeline = kinds(store, answers[0]["incident_id"])
    assert timeline.count("alert.fired") == 150
    assert timeline.count("runbook.queued") == 1 and timeline.count("runbook.started") == 1
    assert timeline.count("runbook.coalesced") == 149
    joined = [a["coalesced"] for answer in answers for a in answer["alerts"] if "coalesced" in a]
    assert len(joined) == 149 and all(j.startswith(f"run {run['id']} ") for j in joined)
    # the incident page folds the storm: a few rows, then one line that counts the rest
    rows = timeline_rows(Incident(store, answers[0]["incident_id"]).timeline())
    storms = [r["summary"] for r in rows if r["kind"] == "alert storm"]
    assert len(rows) < 40 and storms
    counted = sum(int(s.split()[0]) for s in storms)
    shown = sum(1 for r in rows if r["kind"] == "alert.fired")
    assert counted + shown == 150 and f"joined run {run['id']} " in storms[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    store = Store(request.getfixturevalue("postgres").database()
                  if request.param == "postgresql" else tmp_path / "page.db")
    yield store
    store.close()


def test_the_page_folds_a_storm_without_reading_it_as_the_timeline_folds(any_store,
                                                                         monkeypatch):
    """The incident page reads a storm's kinds, times and alert names and the rows it
    shows, not every payload (``page_timeline``); what it shows is what folding the
    whole timeline shows: runs of 5 and 6 storm rows, a run that joins two runs, one
    without a name, a storm row dated before the one recorded ahead of it, and the
    rest of a timeline around them."""
    from gameday.core import events
    from gameday.store import incidents as incidents_store
    from gameday.web.incidents import page_timeline

    store = any_store
    incident = Incident.open(store, "checkout storm", service="checkout")
    n = iter(range(1000))

    def fired(name: str = "CheckoutDown", at_ns: int | None = None) -> None:
        incident.record(events.alert_fired(name, {"alertname": name}, {},
                                           starts_at="2026-11-23T10:00:00Z",
                                           fingerprint=f"f{next(n)}"), "alertmanager",
                        at_ns=at_ns)

    def joined(run_id: int) -> None:
        incident.record(events.runbook_coalesced("restart-it", run_id, "CheckoutDown",
                                                 fingerprint=f"f{next(n)}",
                                                 because=f"run {run_id} is running"), "gameday")

    def note(text: str) -> None:
        incident.record(events.note_added(text), "ana")

    note("before")
    for _ in range(5):
        fired()  # five: shown as they are, until one more turns out to be among them
    between = incident.record(events.note_added("between"), "ana")
    for i in range(6):
        fired() if i % 2 else joined(7)  # six: four shown, one line for two
    note("then the storm")
    for i in range(300):
        fired("Other" if i == 151 else "CheckoutDown") if i % 2 else joined(7 if i < 200 else 8)
    fired("Unnamed")
    note("after")
    fired(at_ns=between.at_monotonic_ns - 1)  # recorded now, happened before "between"
    incident.record(events.alert_fired("", {}, {}, starts_at="2026-11-23T10:00:00Z",
                                       fingerprint="none"), "alertmanager")
    for _ in range(6):
        joined(9)
    note("over")
    for i in range(10):  # the storm resolves: Alertmanager says so of every instance
        incident.record(events.alert_resolved("Other" if i == 9 else "CheckoutDown", {},
                                              fingerprint=f"f{i}"), "alertmanager")

    timeline = Incident(store, incident.id).timeline()
    monkeypatch.setattr(incidents_store, "CLAIMS_PER_STATEMENT", 7)  # rows read in chunks
    page, kinds = page_timeline(store, incident.id)
    assert page == timeline_rows(timeline)
    assert kinds == {e["kind"] for e in timeline}
    storms = [r["summary"] for r in page if r["kind"] == "alert storm"]
    assert len(storms) == 5 and len(page) < 40
    assert storms[2].startswith("149 more alert instances fired (CheckoutDown, Other, "
                                "Unnamed); 148 joined run 7, 8 instead of starting it again")
    assert storms[3].startswith("3 joined run 9 instead of starting it again (until")
    assert storms[4].startswith("6 more alert instances resolved (CheckoutDown, Other) (until")
    assert [r["tone"] for r in page if r["kind"] == "alert storm"] == ["k-alert"] * 4 + ["k-good"]


def test_a_storms_events_come_a_page_at_a_time_in_recording_order(any_store):
    """``Incident.events_page`` (``GET /api/v1/incidents/ID/events``): the pages, one
    after the other, are the whole timeline in recording order, an event dated before
    those recorded ahead of it included; a page is the limit's size, the last says
    there is no more, and a kind filter pages the same way."""
    from gameday.core import events
    from gameday.core.events import Kind

    store = any_store
    incident = Incident.open(store, "checkout storm", service="checkout")
    first = None
    for n in range(25):
        at = first.at_monotonic_ns - 1 if first is not None and n == 17 else None
        event = incident.record(events.alert_fired(
            "CheckoutDown", {"alertname": "CheckoutDown"}, {},
            starts_at="2026-11-23T10:00:00Z", fingerprint=f"f{n}"), "alertmanager", at_ns=at)
        first = first or event
        if n % 10 == 4:
            incident.record(events.note_added(f"note {n}"), "ana")
    everything = [e.as_dict() for e in store.events(incident.id)]

    pages, after = [], 0
    while not pages or pages[-1]["more"]:
        pages.append(incident.events_page(after, 5))
        after = pages[-1]["last_seq"]
    assert [e for p in pages for e in p["events"]] == everything
    assert [len(p["events"]) for p in pages] == [5, 5, 5, 5, 5, 3]
    assert after == everything[-1]["seq"]
    assert incident.events_page(after, 5) == {"incident_id": incident.id, "after": after,
                                              "events": [], "last_seq": after, "more": False}
    notes = incident.events_page(0, 2, [Kind.NOTE_ADDED])
    assert [e["data"]["text"] for e in notes["events"]] == ["note 4", "note 14"]
    assert notes["more"] is True
    rest = incident.events_page(notes["last_seq"], 2, [Kind.NOTE_ADDED])
    assert [e["data"]["text"] for e in rest["events"]] == ["note 24"] and not rest["more"]
    with pytest.raises(NotFound):
        Incident(store, incident.id + 1).events_page(0, 5)


def test_a_status_update_reads_a_storms_facts_not_its_alerts(any_store, monkeypatch):
    """Drafting a status update during a storm (``moves.draft_update``) reads the
    events its facts come from, not the storm's every alert, and finds what reading
    them all found: the last measurement (an alert's SLI, the declaration's), when the
    impact started, the last run."""
    from gameday.core import events
    from gameday.core.events import Kind
    from gameday.incidents import moves
    from gameday.incidents.comms import facts as comms_facts

    store = any_store
    incident = Incident.open(store, "checkout storm", service="checkout")

    def fired(n: int, sli: dict | None = None) -> None:
        incident.record(events.alert_fired("CheckoutDown", {"alertname": "CheckoutDown"}, {},
                                           sli=sli, starts_at="2026-11-23T10:00:00Z",
                                           fingerprint=f"f{n}"), "alertmanager")

    fired(0, sli={"total": 100, "success_ratio": 0.8, "p99_ms": 120})
    incident.declare("SEV-2", "alertmanager", alert="CheckoutDown",
                     measured={"total": 200, "success_ratio": 0.6, "p99_ms": 300})
    incident.record(events.impact_started(500, 12.0), "gameday")
    incident.record(events.runbook_started("restart-it", {"service": "checkout"}, False,
                                           "/tmp/a", run_id=1), "gameday")
    for n in range(1, 400):
        fired(n, sli={} if n == 200 else None)  # an empty measurement is none
    incident.record(events.runbook_finished("restart-it", "successful", 0, run_id=1),
                    "gameday")

    def the_old_way(inc: Incident) -> dict:  # every event read, as before
        timeline = inc.events()
        sli = inc.store.last_sli_window(inc.id) or next(
            (e.data.get("sli") or e.data.get("measured") for e in reversed(timeline)
             if e.kind in (Kind.IMPACT_STARTED, Kind.ALERT_FIRED, Kind.INCIDENT_DECLARED)
             and (e.data.get("sli") or e.data.get("measured"))), None)
        started = next(e for e in timeline if e.kind == Kind.IMPACT_STARTED)
        last = [e for e in timeline if e.kind in (Kind.RUNBOOK_STARTED,
                                                  Kind.RUNBOOK_FINISHED)][-1]
        row = inc.row
        ago = (moves.clock_ns(row) - started.at_monotonic_ns) / 1e9
        return comms_facts(row, roles=inc.roles(), sli=sli,
                           runbook=(last.data["runbook"], last.data["status"]), every=None,
                           started_ago=ago, customer_summary="checkout")

    read = []
    events_of = store.events
    monkeypatch.setattr(store, "events", lambda *a, **kw: read.append(
        len(found := events_of(*a, **kw))) or found)
    facts = moves._facts(incident)
    assert sum(read) < 10, read
    monkeypatch.undo()
    expected = the_old_way(incident)
    assert facts["impact"] == expected["impact"] == "60.0% of requests succeed, p99 latency 300 ms"
    for key in expected:
        if key != "started_ago":  # measured from now: a moment later each time
            assert facts[key] == expected[key], key


def test_incident_show_folds_a_storm_as_the_page_does(tmp_path):
    """``gameday incident show`` prints a storm's first alerts and one line for the
    rest, the page's rows; ``--all`` prints every event."""
    from click.testing import CliRunner

    from gameday.cli.main import cli
    from gameday.core import events

    store = Store(tmp_path / "g.db")
    incident = Incident.open(store, "checkout storm", service="checkout")
    for n in range(60):
        incident.record(events.alert_fired("CheckoutDown", {"alertname": "CheckoutDown"}, {},
                                           starts_at="2026-11-23T10:00:00Z",
                                           fingerprint=f"f{n}"), "alertmanager")
    incident.declare("SEV-2", "alertmanager", alert="CheckoutDown")
    folded = CliRunner().invoke(cli, ["--db", str(store.path), "incident", "show",
                                      str(incident.id)])
    every = CliRunner().invoke(cli, ["--db", str(store.path), "incident", "show",
                                     str(incident.id), "--all"])
    assert folded.exit_code == 0 and every.exit_code == 0, folded.output + every.output
    lines = folded.output.splitlines()
    rows = timeline_rows(Incident(store, incident.id).timeline())
    assert [line[13:35].strip() for line in lines[1:]] == [r["kind"] for r in rows]
    (storm,) = [line for line in lines if " alert storm " in line]
    assert "56 more alert instances fired (CheckoutDown)" in storm
    assert len(every.output.splitlines()) == 1 + len(Incident(store, incident.id).timeline())
    assert " alert storm " not in every.output
    store.close()


def test_redelivery_stays_exact_within_a_storm(tmp_path, books):
    app, store = serve_app(tmp_path, books)
    with TestClient(app) as client:
        first = client.post("/api/v1/alerts", json=fifty(0), headers=AUTH).json()
        again = client.post("/api/v1/alerts", json=fifty(0), headers=AUTH).json()
        wait_runs_done(store, 1)
    assert [a["duplicate"] for a in first["alerts"]] == [False] * 50
    assert [a["duplicate"] for a in again["alerts"]] == [True] * 50
    assert kinds(store, first["incident_id"]).count("alert.fired") == 50


def test_a_run_that_succeeded_is_joined_within_the_window_only(tmp_path, books):
    for window, expected_runs in ((300.0, 1), (0.0, 2)):
        directory = tmp_path / f"window-{window}"
        directory.mkdir()
        app, store = serve_app(directory, books, coalesce_window=window)
        with TestClient(app) as client:
            a = client.post("/api/v1/alerts", json=payload(alert(fingerprint="a")),
                            headers=AUTH).json()
            wait_runs_done(store, 1)
            b = client.post("/api/v1/alerts", json=payload(alert(fingerprint="b")),
                            headers=AUTH).json()
            done = wait_runs_done(store, expected_runs)
        assert len(done) == expected_runs, window
        if expected_runs == 1:
            assert b["alerts"][0]["run_id"] == a["alerts"][0]["run_id"]
            assert "succeeded" in b["alerts"][0]["coalesced"]
        else:
            assert "coalesced" not in b["alerts"][0]


def test_check_mode_and_other_parameters_are_not_joined(tmp_path, books):
    app, store = serve_app(tmp_path, books)
    with TestClient(app) as client:
        a = client.post("/api/v1/alerts", json=payload(alert(fingerprint="a")),
                        headers=AUTH).json()
        b = client.post("/api/v1/alerts", json=payload(alert(fingerprint="b", service="cart"),
                                                       group="cart"), headers=AUTH).json()
        runs_done = wait_runs_done(store, 2)
    assert a["alerts"][0]["run_id"] != b["alerts"][0]["run_id"]
    assert sorted(r["params"]["service"] for r in runs_done) == ["cart", "checkout"]


# -- per-runbook concurrency and shutdown ---------------------------------------------------
def test_a_runbook_runs_one_at_a_time_by_default(tmp_path, books):
    app, store = serve_app(tmp_path, books, max_concurrent=4)
    with TestClient(app) as client:
        for i in range(3):
            client.post("/api/v1/alerts", json=payload(
                alert("Slow", fingerprint=f"s{i}", service=f"svc{i}"), group=f"g{i}"),
                headers=AUTH)
        done = wait_runs_done(store, 3, timeout=120)
    spans = sorted((r["started_at"], r["finished_at"]) for r in done)
    assert all(finished <= next_start for (_, finished), (next_start, _)
               in zip(spans, spans[1:], strict=False)), spans
    assert all(r["status"] == "successful" for r in done)


def test_shutdown_cancels_waiting_runs_on_the_record(tmp_path, books):
    app, store = serve_app(tmp_path, books)
    with TestClient(app) as client:
        answers = [client.post("/api/v1/alerts", json=payload(
            alert("Slow", fingerprint=f"s{i}", service=f"svc{i}"), group=f"g{i}"),
            headers=AUTH).json() for i in range(3)]
        deadline = time.monotonic() + 30
        while store.run(answers[0]["alerts"][0]["run_id"])["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    # leaving the client shuts the app down: the running one finished, the rest cancelled
    statuses = [store.run(a["alerts"][0]["run_id"])["status"] for a in answers]
    assert statuses == ["successful", "canceled", "canceled"]
    finished = [e for e in store.events(answers[2]["incident_id"])
                if e.kind == "runbook.finished"]
    assert finished[0].data["status"] == "canceled" and "stopped" in finished[0].data["error"]


# -- runs whose process died ----------------------------------------------------------------
def test_recover_ends_runs_whose_process_is_gone(tmp_path, books):
    store = Store(tmp_path / "g.db")
    incident = Incident.open(store, "storm", service="checkout")
    incident.declare("SEV-3", "test")
    book = find("restart-it", books)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = store.create_run(incident.id, book.name, {"service": "checkout"}, "alertmanager",
                              False, owner=f"{os.uname().nodename}:{dead}:1")
    legacy = store.create_run(None, book.name, {"service": "cart"}, "alertmanager", False)
    mine = runs.queue(store, book, {"service": "web"}, incident=None, who="test")
    recovery.recover(store)
    assert store.run(orphan)["status"] == "canceled"
    assert store.run(legacy)["status"] == "canceled"
    assert store.run(mine)["status"] == "queued"  # this process is alive
    assert "runbook.finished" in kinds(store, incident.id)
    assert store.joinable_run(book.name, {"service": "checkout"}, succeeded_since=None) is None
    before = len(store.audit_log())
    recovery.recover(store)
    assert len(store.audit_log()) == before  # a second recover does nothing


# -- group commit ---------------------------------------------------------------------------
def test_one_bad_notification_rolls_back_alone(tmp_path, books, monkeypatch):
    store = Store(tmp_path / "g.db")
    intake = Intake(store, runbook_dir=books)
    notes = [parse(payload(alert(fingerprint=f"f{i}", service=f"svc{i}"), group=f"g{i}"))
             for i in range(3)]
    real = intake._firing

    def failing(a, queued):
        if a.fingerprint == "f1":
            real(a, queued)  # writes, then fails: all of it must go
            raise GamedayError("boom")
        return real(a, queued)

    monkeypatch.setattr(intake, "_firing", failing)
    answers, starts = intake.handle([Delivery(n, "token") for n in notes])
    assert isinstance(answers[1], GamedayError)
    assert [a["alerts"][0]["duplicate"] for a in (answers[0], answers[2])] == [False, False]
    assert store.alert_instance(notes[1].alerts[0].key) is None
    assert [i["service"] for i in store.incidents()] == ["svc0", "svc2"]
    assert [s.params["service"] for s in starts] == ["svc0", "svc2"]
    assert len(store.audit_log()) == 4  # two notifications, two queued runs


def test_a_batch_written_at_once_records_what_one_at_a_time_records(tmp_path, books,
                                                                     monkeypatch):
    """The same batch (new groups and a known one, a redelivery inside the batch and one
    of an earlier batch, a resolved alert, an alert with no runbook, a bad parameter,
    two runs to queue) written all at once and one notification at a time: the same
    answers, timelines, alert instances and audit log."""
    def deliveries() -> list[Delivery]:
        notes = [payload(alert(fingerprint="a0"), group="g-checkout"),
                 payload(alert(fingerprint="a1"), alert(fingerprint="a2"), group="g-checkout"),
                 payload(alert(fingerprint="c0", service="cart"), group="g-cart"),
                 payload(alert(fingerprint="a1"), group="g-checkout"),  # again, same batch
                 payload(alert(fingerprint="old"), group="g-checkout"),  # an earlier batch's
                 payload(alert(fingerprint="a0", status="resolved"), status="resolved",
                         group="g-checkout"),
                 payload(alert("Unrouted", fingerprint="u0"), group="g-unrouted"),
                 payload(alert(fingerprint="bad", service="Not Valid!"), group="g-bad"),
                 payload(alert(fingerprint="c1", service="cart"), group="g-cart")]
        return [Delivery(parse(n), "token") for n in notes]

    def written(at_once: bool) -> tuple[list, dict, list, list]:
        store = Store(tmp_path / f"at-once-{at_once}.db")
        intake = Intake(store, runbook_dir=books)
        intake.handle([Delivery(parse(payload(alert(fingerprint="old"), group="g-checkout")),
                                "token")])
        def refuse(_: list[Delivery]) -> None:
            raise GamedayError("not this way")

        monkeypatch.setattr(intake, "_one_by_one" if at_once else "_at_once", refuse)
        answers, starts = intake.handle(deliveries())
        monkeypatch.undo()
        timelines = {i["id"]: [(e.seq, e.kind, e.actor, e.data) for e in store.events(i["id"])]
                     for i in store.incidents()}
        instances = [(r["key"], r["incident_id"]) for r in store.reader().execute(
            "SELECT key, incident_id FROM alert_instances ORDER BY key")]
        audit = [(a["who"], a["action"], a["data"]) for a in store.audit_log()]
        return ([answers, [(s.run_id, s.params) for s in starts]], timelines, instances,
                audit)

    assert written(at_once=True) == written(at_once=False)


def test_a_runbook_changed_between_batches_is_routed_anew(tmp_path, books, monkeypatch):
    """The runbook files are only looked at (not read) while they stay the same: a
    file written since, or added, is read before the next batch is routed, whatever
    its timestamps say."""
    store = Store(tmp_path / "g.db")
    intake = Intake(store, runbook_dir=books)
    settled = time.time() - 60
    for path in books.iterdir():
        os.utime(path, (settled, settled))

    def routed(fingerprint: str) -> dict:
        note = parse(payload(alert(fingerprint=fingerprint), group=f"g-{fingerprint}"))
        answers, _ = intake.handle([Delivery(note, "token")])
        return answers[0]["alerts"][0]

    assert routed("one")["runbook"] == "restart-it"
    assert routed("two")["runbook"] == "restart-it"  # nothing changed: looked at only
    write_runbook(books, "restart-it", ["Other"])  # no longer about Boom; written now
    assert routed("three")["runbook"] is None
    write_runbook(books, "restart-it", ["Boom"], auto=False)
    os.utime(books / "restart-it.yml", (settled, settled))  # the old time, other bytes
    answer = routed("four")
    assert answer["runbook"] == "restart-it" and "run_id" not in answer
    write_runbook(books, "boom-too", ["Boom"])  # a new file, with an old time
    (books / "restart-it.yml").unlink()
    os.utime(books / "boom-too.yml", (settled, settled))
    assert routed("five")["runbook"] == "boom-too"
    # written twice within one tick of the file clock: the second, same size and same
    # time, is read even once that time is long past
    stamp = time.time_ns()
    os.utime(books / "boom-too.yml", ns=(stamp, stamp))
    assert routed("six")["runbook"] == "boom-too"
    write_runbook(books, "boom-too", ["Bxxm"])
    os.utime(books / "boom-too.yml", ns=(stamp, stamp))
    monkeypatch.setattr(clock, "epoch_ns", lambda: stamp + 10_000_000_000)
    assert routed("seven")["runbook"] is None


def test_batcher_answers_each_submitter_and_keeps_order():
    seen: list[list[int]] = []

    def handle(items: list[int]) -> list[int | Exception]:
        seen.append(items)
        return [ValueError(i) if i % 5 == 0 else i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(handle, max_batch=8)
    futures = [batcher.submit(i) for i in range(1, 41)]
    batcher.stop()
    for i, future in enumerate(futures, start=1):
        if i % 5 == 0:
            assert isinstance(future.exception(), ValueError)
        else:
            assert future.result() == i * 2
    assert [i for batch in seen for i in batch] == list(range(1, 41))
    assert max(len(batch) for batch in seen) <= 8


def test_a_caller_that_went_away_does_not_stop_the_writer():
    """A request given up on (its future cancelled) while its batch waits: the others,
    and the batches after, are still answered, on a thread or on an event loop."""
    started, release = threading.Event(), threading.Event()

    def handle(items: list[int]) -> list[int | Exception]:
        started.set()
        release.wait(5)
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(handle, linger=0)
    first = batcher.submit(1)
    assert started.wait(5)
    gone = batcher.submit(2)
    assert gone.cancel()
    release.set()
    assert first.result(5) == 2 and batcher.submit(3).result(5) == 6

    async def on_a_loop() -> int:
        loop = asyncio.get_running_loop()
        batcher.submit_to(4, loop).cancel()
        return await asyncio.wait_for(batcher.submit_to(5, loop), 5)

    assert asyncio.run(on_a_loop()) == 10
    batcher.stop()


def test_two_writers_on_one_store_open_one_incident_and_one_run(tmp_path, books):
    """Two intakes (two serve processes' worth) racing over the same group."""
    path = tmp_path / "g.db"
    Store(path)
    results: list = []

    def storm(writer: int) -> None:
        intake = Intake(Store(path), runbook_dir=books)
        for n in range(20):
            note = parse(payload(*(alert(fingerprint=f"w{writer}n{n}a{i}") for i in range(5))))
            results.append(intake.handle([Delivery(note, f"writer{writer}")]))

    threads = [threading.Thread(target=storm, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = Store(path)
    assert len(store.incidents()) == 1 and len(store.runs()) == 1
    starts = [s for _, batch_starts in results for s in batch_starts]
    assert len(starts) == 1
    assert kinds(store, 1).count("alert.fired") == 200


def test_nested_transactions_commit_together_or_roll_back_alone(tmp_path):
    store = Store(tmp_path / "g.db")
    with store.transaction():
        kept = store.create_incident("kept")
        with pytest.raises(RuntimeError), store.transaction():
            store.create_incident("dropped")
            raise RuntimeError
    assert [i["title"] for i in store.incidents()] == ["kept"] and kept == 1
    with pytest.raises(RuntimeError), store.transaction():
        store.create_incident("all of it")
        raise RuntimeError
    assert [i["title"] for i in store.incidents()] == ["kept"]


# -- a real server under load --------------------------------------------------------------
@pytest.mark.slow
def test_a_storm_through_real_http_loses_nothing(tmp_path, books, gameday_serve):
    """Keep-alive clients against `gameday serve`; every answered instance is stored."""
    db = tmp_path / "gameday.db"
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(db),
           "GAMEDAY_RUNBOOKS": str(books)}
    served = gameday_serve(env, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    serve, port = served.proc, served.port

    async def client(index: int, accepted: set[str]) -> None:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.1)
        for n in range(60):
            note = payload(alert(fingerprint=f"c{index}n{n}", service=f"svc{index % 3}"),
                           group=f"svc{index % 3}")
            body = json.dumps(note).encode()
            writer.write(f"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         f"{TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if status == 200:
                accepted.add(f"svc{index % 3}|c{index}n{n}|2026-11-22T10:00:00Z")
        writer.close()

    async def storm() -> set[str]:
        accepted: set[str] = set()
        await asyncio.gather(*(client(i, accepted) for i in range(12)))
        return accepted

    try:
        accepted = asyncio.run(storm())
    finally:
        serve.terminate()
        assert serve.wait(timeout=60) != 0  # SIGTERM: 143, after the running runs finished
    store = Store(db)
    stored = {i["key"] for i in map(store.alert_instance, accepted) if i}
    assert len(accepted) == 720 and stored == accepted
    done = store.runs()
    assert len(done) == 3 and all(r["status"] in ("successful", "canceled") for r in done)

