"""The intake's writer in a process of its own, beside ``gameday serve``.

In one Python process, answering HTTP and recording alerts (SQL, the intake's
decisions, JSON) take turns on one interpreter lock, so a storm uses one core however
many the machine has. ``Writer`` stands where ``runs.intake.Intake`` stands in the
dispatcher (``runs.pool.Dispatcher``): its ``handle`` takes a batch of notifications
and answers it as ``Intake.handle`` does, because the process runs that very
``Intake`` on the same store, with the same runbooks, settings and trust policy. The
server parses and checks each request as before; only the batch crosses, pickled, over
a socket pair (``multiprocessing.connection``), and its answers and the runs to start
come back. Runs start in ``gameday serve``, as before.

When the process ends (a crash, the kernel's OOM killer, a person's ``kill``), the
batch it held is answered 503 with Retry-After: the sender delivers it again, and what
had been committed is then a known instance, answered as a duplicate. The next batch
starts a new process. ``gameday serve`` closes the connection once its last batch is
answered; the process ends when it reads that, or by itself when ``gameday serve``
is gone without closing it. It ignores SIGINT and SIGTERM: they are for ``gameday
serve``, which stops it in that order.

``python -m gameday.web.writer FD``: the process itself, on the socket ``FD``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from gameday.core.errors import StoreUnavailable
from gameday.core.settings import Settings, use
from gameday.report.trust import hold_for
from gameday.runs.intake import Answers, Delivery, Intake
from gameday.store import Store

START_S = 60.0  # how long the first batch waits for a new process to be ready
STOP_S = 5.0  # how long closing waits for the process to end before killing it
WATCH_S = 1.0  # how often an idle process checks that gameday serve is still there


@dataclass(frozen=True)
class Spec:
    """What the process builds its ``Intake`` from: ``create_app``'s own arguments."""

    store_url: str
    runbook_dir: Path | None
    coalesce_window: float
    env: dict[str, str]
    settings: Settings


class Writer:
    """``Intake.handle`` in another process. Batches may be handed over from several
    threads at once (the dispatcher's ``Batcher`` keeps the next one ready): they are
    sent in turn, the process takes them in that order, and a thread here reads the
    answers as they come and gives each to the thread that waits for it. ``close``
    after the last batch."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._lock = threading.Lock()  # the connection, the process and what waits
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None  # what batches are sent on
        self._sock: socket.socket | None = None  # its socket
        self._waiting: deque[Future[Any]] = deque()  # sent, in order, not yet answered
        self._closed = False
        with self._lock:
            self._start()  # now, so that the first alert does not wait for its imports

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def handle(self, deliveries: Sequence[Delivery]) -> Answers:
        answer: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise StoreUnavailable("gameday serve is stopping: the intake takes no more "
                                       "alerts")
            if self._conn is None:
                self._start()
            assert self._conn is not None
            try:
                self._conn.send(list(deliveries))
            except (OSError, pickle.PickleError) as exc:
                self._lost_locked(exc)
                raise _ended(exc) from None
            self._waiting.append(answer)
        reply = answer.result()
        if reply[0] == "raised":
            raise reply[1]
        _, answers, starts = reply
        return answers, starts

    def close(self) -> None:
        """Let the process end (it reads the end of its connection), then reap it."""
        with self._lock:
            self._closed = True
            proc = self._lost_locked(None)
        _reap(proc)

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gameday.web.writer", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        # the reader's own descriptor: shutting ``ours`` down wakes it, closing would not
        conn = Connection(os.dup(ours.fileno()))
        conn.send(self.spec)
        self._proc, self._conn, self._sock = proc, conn, ours
        threading.Thread(target=self._read, args=(conn,), name="intake-answers",
                         daemon=True).start()

    def _read(self, conn: Connection) -> None:
        """The answers of one process, each to the batch it is for, until it ends."""
        try:
            if not conn.poll(START_S):
                raise OSError(f"not ready within {START_S:.0f}s")
            ready = conn.recv()
            if ready[0] != "ready":
                raise OSError(ready[1])
            while True:
                reply = conn.recv()
                with self._lock:
                    answer = self._waiting.popleft()
                answer.set_result(reply)
        except (OSError, EOFError, pickle.PickleError) as exc:
            with self._lock:
                proc = self._lost_locked(exc) if self._conn is conn else None
            _reap(proc)
        finally:
            conn.close()

    def _lost_locked(self, exc: BaseException | None) -> subprocess.Popen[bytes] | None:
        """Forget the process: end its connection (it exits when it reads that), and
        fail what waited for it (the next batch starts another). Its ``Popen`` is
        handed back, to be reaped outside the lock."""
        sock, proc = self._sock, self._proc
        self._conn, self._proc, self._sock = None, None, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the process and the reader see the end
            sock.close()
        waiting, self._waiting = self._waiting, deque()
        for answer in waiting:
            answer.set_exception(_ended(exc))
        return proc


def _ended(exc: BaseException | None) -> StoreUnavailable:
    return StoreUnavailable(f"the intake's writer process ended ({exc or 'no answer'}): the "
                            "batch was not answered, send it again")


def _reap(proc: subprocess.Popen[bytes] | None) -> None:
    """Wait for the process to end (it does once its connection is closed); kill it
    should it linger."""
    if proc is None:
        return
    try:
        proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def portable(answer: Any) -> Any:
    """An answer as it can cross to ``gameday serve``: an exception that does not come
    back as itself (one whose constructor wants other arguments) as a RuntimeError
    that names it (answered 500, as it would have been)."""
    if not isinstance(answer, BaseException):
        return answer
    try:
        if type(pickle.loads(pickle.dumps(answer))) is type(answer):
            return answer
    except Exception:  # noqa: BLE001 - whatever pickling says, it does not cross
        pass
    return RuntimeError(f"{type(answer).__name__}: {answer}")


def serve(conn: Connection) -> int:
    """The process: build the intake from the spec, then answer batches until the
    connection ends or gameday serve is gone."""
    parent = os.getppid()
    spec: Spec = conn.recv()
    try:
        use(spec.settings)
        store = Store(spec.store_url)
        intake = Intake(store, runbook_dir=spec.runbook_dir,
                        coalesce_window=spec.coalesce_window, env=spec.env,
                        hold=hold_for(store, spec.settings.automation))
    except Exception as exc:  # noqa: BLE001 - said to gameday serve, which answers 503
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return 1
    conn.send(("ready",))
    while True:
        while not conn.poll(WATCH_S):
            if os.getppid() != parent:
                return 0
        try:
            deliveries: list[Delivery] = conn.recv()
        except EOFError:
            return 0
        try:
            answers, starts = intake.handle(deliveries)
            reply: tuple[Any, ...] = ("answered", [portable(a) for a in answers], starts)
        except Exception as exc:  # noqa: BLE001 - the whole batch failed: its senders hear it
            reply = ("raised", portable(exc))
        conn.send(reply)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[1]))
    try:
        return serve(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
