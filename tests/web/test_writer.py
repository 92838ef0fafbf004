"""The intake's writer in a process of its own (``gameday.web.writer``): it records what
the in-process intake records, a process that dies costs its batch a 503 and nothing
else, and none outlives ``gameday serve``."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from serving import eventually
from webhooks import AUTH, TOKEN, alert, payload, write_runbook

from gameday.core.errors import StoreUnavailable, ValidationError
from gameday.core.settings import current
from gameday.runs.alerts import parse
from gameday.runs.intake import Delivery, Intake
from gameday.runs.pool import Dispatcher
from gameday.store import Store
from gameday.web.writer import Spec, Writer, portable


@pytest.fixture
def books(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    write_runbook(d, "restart-it", ["Boom"])
    return d


def deliveries(*fingerprints: str, service: str = "checkout") -> list[Delivery]:
    return [Delivery(parse(payload(alert(fingerprint=f, service=service), group=f"g-{service}")),
                     "token") for f in fingerprints]


def writer(store: Store, books: Path) -> Writer:
    return Writer(Spec(store.url, books, 300.0, {}, current()))


def recorded(store: Store) -> tuple[list, list, list]:
    timelines = [(e.incident_id, e.seq, e.kind, e.data) for i in store.incidents()
                 for e in store.events(i["id"])]
    runs = [(r["id"], r["runbook"], r["params"], r["status"]) for r in store.runs()]
    audit = [(a["who"], a["action"], a["data"]) for a in store.audit_log()]
    return timelines, runs, audit


def test_the_process_records_what_the_intake_here_records(tmp_path, books):
    batches = [deliveries("a0", "a1"), deliveries("a1", "a2", service="cart"),
               deliveries("a3", service="Not Valid!")]
    here = Store(tmp_path / "here.db")
    intake = Intake(here, runbook_dir=books)
    there = Store(tmp_path / "there.db")
    other = writer(there, books)
    try:
        answered = [other.handle(batch) for batch in batches]
    finally:
        other.close()
    expected = [intake.handle(batch) for batch in batches]
    assert [a for a, _ in answered] == [a for a, _ in expected]
    assert [[(s.run_id, s.runbook.name, s.params, s.world) for s in starts]
            for _, starts in answered] == \
        [[(s.run_id, s.runbook.name, s.params, s.world) for s in starts] for _, starts in expected]
    assert recorded(there) == recorded(here)


def test_a_process_that_died_costs_its_batch_a_503_and_is_replaced(tmp_path, books):
    store = Store(tmp_path / "g.db")
    w = writer(store, books)
    try:
        (first,), _ = w.handle(deliveries("f0"))
        assert first["alerts"][0]["duplicate"] is False
        dead = w.pid
        assert dead is not None
        os.kill(dead, signal.SIGSTOP)  # it takes the next batch, and never answers it
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(w.handle, deliveries("f1"))
            eventually(lambda: w._child is not None and w._child.waiting, 10,
                       "the batch to be sent")
            os.kill(dead, signal.SIGKILL)
            with pytest.raises(StoreUnavailable, match=rf"\(pid {dead}\) ended \(killed by "
                                                       "SIGKILL\) before it answered"):
                sent.result(30)
        # the next batch gets a new process; what the dead one committed is known
        (again, new), _ = w.handle(deliveries("f0", "f1"))
        assert w.pid not in (None, dead)
        assert again["alerts"][0]["duplicate"] is True
        assert new["alerts"][0]["duplicate"] is False
    finally:
        w.close()
    assert store.alert_instance(deliveries("f1")[0].note.alerts[0].key) is not None


def test_a_run_waiting_for_its_turn_outlives_the_writer_that_queued_it(tmp_path):
    """Runs a batch queued are gameday serve's once it has the answer: a run still
    waiting for a slot when the writer process dies is not taken for orphaned."""
    books = tmp_path / "runbooks"
    books.mkdir()
    write_runbook(books, "one-at-a-time", ["Boom"], sleep=1.0)
    store = Store(tmp_path / "g.db")
    dispatcher = Dispatcher(store, runbook_dir=books, data_dir=tmp_path / "data",
                            writer=writer(store, books))
    try:
        for service in ("cart", "shop"):
            (note,) = deliveries(f"r-{service}", service=service)
            assert "run_id" in dispatcher.receive(note.note, "token").result(30)["alerts"][0]
        eventually(lambda: [r["status"] for r in store.runs()] == ["running", "queued"], 30,
                   "one run running, the other waiting for the runbook's one slot")
        pid = dispatcher.intake.pid  # type: ignore[attr-defined]
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: dispatcher.intake._child is None, 10,  # type: ignore[attr-defined]
                   "the writer's end to be seen")
        dispatcher.sweep()  # runs whose process is gone end here: not these
        eventually(lambda: [r["status"] for r in store.runs()] == ["successful"] * 2, 60,
                   lambda: f"both runs to succeed: {[r['status'] for r in store.runs()]}")
    finally:
        dispatcher.shutdown()


def test_a_process_ends_when_closed_and_takes_nothing_after(tmp_path, books):
    w = writer(Store(tmp_path / "g.db"), books)
    pid = w.pid
    w.handle(deliveries("c0"))
    w.close()
    assert pid is not None and not _alive(pid)
    with pytest.raises(StoreUnavailable, match="stopping"):
        w.handle(deliveries("c1"))


def test_an_answer_that_cannot_cross_says_what_it_was():
    assert isinstance(portable(StoreUnavailable("gone")), StoreUnavailable)
    answer = {"incident_id": 3}
    assert portable(answer) is answer
    crossed = portable(ValidationError("bad", file="f.yml", field="x"))
    assert isinstance(crossed, ValidationError | RuntimeError) and "bad" in str(crossed)

    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")

    assert str(portable(Odd(1, 2))) == "Odd: 1/2"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_writer_outlives_gameday_serve(tmp_path, books, gameday_serve, how):
    env = {**os.environ, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_DB": str(tmp_path / "g.db"),
           "GAMEDAY_RUNBOOKS": str(books)}
    served = gameday_serve(env, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    body = json.dumps(payload(alert(fingerprint="s0"))).encode()
    request = urllib.request.Request(served.base + "/api/v1/alerts", data=body,
                                     headers={**AUTH, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert json.load(answer)["alerts"][0]["duplicate"] is False
    (child,) = _children(served.proc.pid)
    assert "gameday.web.writer" in Path(f"/proc/{child}/cmdline").read_text()
    served.proc.send_signal(how)
    served.proc.wait(30)
    eventually(lambda: not _alive(child), 10, f"the writer process {child} to end")


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if "gameday.web.writer" in Path(f"/proc/{p}/cmdline").read_text()]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped by a parent that is gone too."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
