"""The intake's writer in a process of its own, beside ``gameday serve``.

In one Python process, answering HTTP and recording alerts (SQL, the intake's
decisions, JSON) take turns on one interpreter lock, so a storm uses one core however
many the machine has. ``Writer`` stands where ``runs.intake.Intake`` stands in the
dispatcher (``runs.pool.Dispatcher``): its ``handle`` takes a batch of notifications
and answers it as ``Intake.handle`` does, because the process runs that very
``Intake`` on the same store, with the same runbooks, settings and trust policy. The
server parses and checks each request as before; only the batch crosses, pickled, over
a socket pair (``multiprocessing.connection``), and its answers and the runs to start
come back. Runs start in ``gameday serve``, as before: the runs a batch queued are the
server's from the moment its answer arrives (``Store.adopt_runs``).

When the process ends (a crash, the kernel's OOM killer, a person's ``kill``), the
batches it had not answered are answered 503 with Retry-After, saying how it ended:
the sender delivers them again, and what had been committed is then a known instance,
answered as a duplicate (a run such a batch queued is still the writer's, and is
ended on the record by the next sweep, as any run whose process is gone). The next
batch starts a new process. ``gameday serve`` closes the connection once its last batch is
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
from dataclasses import dataclass, field
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


@dataclass
class _Child:
    """One writer process: its connection, and the futures of the batches it was sent,
    in order, not yet answered."""

    proc: subprocess.Popen[bytes]
    sock: socket.socket  # ours: shut down to say the end
    conn: Connection  # on a descriptor of its own, read by ``reader``
    waiting: deque[Future[Any]] = field(default_factory=deque)
    reader: threading.Thread | None = None


class Writer:
    """``Intake.handle`` in another process. Batches may be handed over from several
    threads at once (the dispatcher's ``Batcher`` keeps the next one ready): they are
    sent in turn, the process takes them in that order, and a thread here reads the
    answers as they come and gives each to the thread that waits for it. ``close``
    after the last batch."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._lock = threading.Lock()  # which process takes batches, and what waits
        self._child: _Child | None = None
        self._closed = False
        with self._lock:
            self._start()  # now, so that the first alert does not wait for its imports

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.proc.pid if child else None

    def handle(self, deliveries: Sequence[Delivery]) -> Answers:
        answer: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise StoreUnavailable("gameday serve is stopping: the intake takes no more "
                                       "alerts")
            child = self._child or self._start()
            try:
                child.conn.send(list(deliveries))
            except (OSError, pickle.PickleError) as exc:
                self._retire(child)
                raise _ended(child, exc) from None
            child.waiting.append(answer)
        reply = answer.result()
        if reply[0] == "raised":
            raise reply[1]
        _, answers, starts = reply
        return answers, starts

    def close(self) -> None:
        """Let the process end (it reads the end of its connection once it has answered
        what it was sent), and wait until it has."""
        with self._lock:
            self._closed = True
            child = self._child
            if child is not None:
                self._retire(child)
        if child is not None and child.reader is not None:
            child.reader.join()

    def _start(self) -> _Child:
        """A new process, taking batches from now on (the lock held)."""
        ours, theirs = socket.socketpair()
        try:
            # -P: nothing in the project's directory stands in for an installed module;
            # a session of its own: a terminal's Ctrl-C is for gameday serve alone
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "gameday.web.writer", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            ours.close()
            raise StoreUnavailable(f"the intake's writer process could not start: {exc}") \
                from None
        finally:
            theirs.close()
        child = _Child(proc, ours, Connection(os.dup(ours.fileno())))
        child.reader = threading.Thread(target=self._read, args=(child,),
                                        name="intake-answers", daemon=True)
        self._child = child
        try:
            child.conn.send(self.spec)
        except (OSError, pickle.PickleError):
            self._retire(child)  # its reader says why, and reaps it
        child.reader.start()
        return child

    def _retire(self, child: _Child) -> None:
        """No more batches go to ``child`` (the lock held): it ends once it has answered
        what it was sent, and its reader gives those answers on until then."""
        if self._child is child:
            self._child = None
        with contextlib.suppress(OSError):
            child.sock.shutdown(socket.SHUT_WR)

    def _read(self, child: _Child) -> None:
        """The answers of one process, each to the batch it is for, until it ends; then
        whatever it left unanswered fails, once it has been reaped."""
        error: BaseException | None = None
        try:
            if not child.conn.poll(START_S):
                raise OSError(f"not ready within {START_S:.0f}s")
            ready = child.conn.recv()
            if ready[0] != "ready":
                raise OSError(ready[1])
            while True:
                reply = child.conn.recv()
                with self._lock:
                    answer = child.waiting.popleft()
                answer.set_result(reply)
        except BaseException as exc:  # noqa: BLE001 - its end (EOF), or an answer unread
            error = exc
        finally:
            with self._lock:
                self._retire(child)
                waiting, child.waiting = child.waiting, deque()
            with contextlib.suppress(OSError):
                child.sock.shutdown(socket.SHUT_RDWR)
            child.sock.close()
            child.conn.close()
            _reap(child.proc)
            for answer in waiting:
                answer.set_exception(_ended(child, error))


def _ended(child: _Child, exc: BaseException | None) -> StoreUnavailable:
    """Why a batch was not answered: how its process ended, as far as is known."""
    code = child.proc.returncode
    how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
           else f"exit status {code}" if code is not None
           else f"{type(exc).__name__}: {exc}" if exc is not None and str(exc)
           else "no answer")
    return StoreUnavailable(f"the intake's writer process (pid {child.proc.pid}) ended "
                            f"({how}) before it answered the batch; send it again")


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait for the process to end (it does once its connection is shut); kill it
    should it linger."""
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
        try:
            conn.send(reply)
        except OSError:  # gameday serve is gone
            return 0


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
