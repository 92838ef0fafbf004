"""The warm executor's zygote: the single-threaded process that imported Ansible once and
forks one child per runbook run, one of them ahead of its run (the protocol and the
reasons are in ``executor``'s docstring). What a child does to Ansible is ``child``'s;
killing a run's whole tree is ``trees``'.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from gameday.runbooks import child as in_child
from gameday.runbooks import fastpath, trees
from gameday.runbooks.executor import INVENTORY, REPLY_TIMEOUT_S, fingerprint

log = logging.getLogger(__name__)
# A spare child taken by a run is replaced as soon as a run ends, or this long after it
# was taken: not at once, where its fork would take CPU from the run starting
SPARE_AFTER_S = 1.0

WARM_UP_PLAY = [{"name": "gameday warm-up", "hosts": "localhost", "gather_facts": False,
                 "tasks": [{"name": "warm the command module",
                            "ansible.builtin.command": {"argv": ["true"]},
                            "changed_when": False},
                           {"name": "warm the templating",
                            "ansible.builtin.debug": {"msg": "{{ 'ready' | upper }}"}}]}]


def zygote_main(workdir: str, warm_up: bool) -> None:
    """The zygote's program (``WarmExecutor.command``)."""
    sys.exit(_Zygote(Path(workdir)).main(warm_up))


class _Zygote:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.sel = selectors.DefaultSelector()
        self.runs: dict[int, socket.socket | None] = {}    # pid -> its connection
        self.conns: dict[socket.socket, int | None] = {}   # connection -> its pid
        self.listener: socket.socket | None = None
        self.wakeup: tuple[int, int] | None = None
        self.fingerprint: dict[str, str] = {}
        self.warm_argv: list[str] = []
        self.config_messages: dict[str, Any] = {}
        self.awx_display: list[Any] = []  # ansible-runner's display callback modules
        self.prepared: dict[str, Any] = {}  # what every run builds alike (child.prepare)
        # a child forked ahead of its run, set up and waiting for it (its pid and our end
        # of its socket), and when the next one is forked (None: none is wanted)
        self.spare: tuple[int, socket.socket] | None = None
        self.spare_due: float | None = None
        self.spare_failures = 0  # spares in a row that died before taking a run
        self.fast: str | None = "not prepared"  # why runs cannot take the fast path

    def main(self, warm_up: bool) -> int:
        hello = os.fdopen(os.dup(1), "w")
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 1)  # Ansible's output during the warm-up goes nowhere
        os.close(null)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
        try:
            self.prepare(warm_up)
            if warm_up or not self.fast:  # the fast path needs its multiplexer either way
                self.warm_up()
            self.settle()
        except BaseException as exc:
            if not _say(hello, {"ready": False, "error": f"{type(exc).__name__}: {exc}"}):
                shutil.rmtree(self.dir, ignore_errors=True)  # nobody will read why
            raise  # the traceback goes to zygote.log, where the parent reads the reason
        try:
            if _say(hello, {"ready": True, "pid": os.getpid(),
                            "fingerprint": self.fingerprint, "fast": self.fast}):
                self.serve()
        finally:
            self.shutdown()
            # our directory (socket, warm-up, Ansible's scratch): the parent removes it
            # too, unless it went away first
            shutil.rmtree(self.dir, ignore_errors=True)
        return 0

    def prepare(self, warm_up: bool = True) -> None:
        """The environment a run's ``ansible-playbook`` would have (as ansible-runner
        prepares it), then Ansible imported under it. Without ``warm_up`` (a zygote
        replacing one that died), only the fast path's play is warmed: it starts
        Mitogen's multiplexer and warm interpreter, which every fast run needs."""
        from ansible_runner.interface import init_runner

        warm = self.dir / "warm-up"
        warm.mkdir()
        playbook = warm / "warm-up.yml"
        self.fast = fastpath.available()
        fast_play = [{**WARM_UP_PLAY[0], "strategy": fastpath.STRATEGY}]
        plays = (WARM_UP_PLAY if self.fast else  # both strategies warmed, or the fast one
                 [*WARM_UP_PLAY, *fast_play] if warm_up else fast_play)
        playbook.write_text(json.dumps(plays))  # JSON is YAML
        runner = init_runner(private_data_dir=str(warm), playbook=str(playbook),
                             inventory=INVENTORY, envvars={}, quiet=True, ident="run",
                             cancel_callback=lambda: False)
        env = dict(runner.config.env)
        self.fingerprint = fingerprint(env)
        # Ansible's own scratch directory: inside ours, so it goes when we go
        env.setdefault("ANSIBLE_LOCAL_TEMP", str(self.dir / "tmp"))
        if not self.fast:
            env = fastpath.zygote_env(env)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(runner.config.cwd)
        self.warm_argv = list(runner.config.command)
        # what every run needs, imported once
        import ansible.cli.playbook  # type: ignore[import-untyped]  # noqa: F401
        import ansible.executor.playbook_executor  # type: ignore[import-untyped]  # noqa: F401

        self.config_messages = in_child.config_messages()  # every run reports them, as a cold one
        if not self.fast:
            fastpath.prepare_zygote()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.dir / "sock"))
        self.listener.listen(64)

    def warm_up(self) -> None:
        """One throwaway playbook: plugins found and loaded, the command module's
        payload built and cached, the display callback imported."""
        from ansible.cli.playbook import PlaybookCLI

        sys.argv = list(self.warm_argv)
        try:
            PlaybookCLI.cli_executor(list(self.warm_argv))
        except SystemExit as exc:
            if exc.code:
                print(f"gameday executor: the warm-up playbook ended with {exc.code}",
                      file=sys.stderr)
        if not self.fast:
            fastpath.settle_zygote()
        self._single_threaded(5.0)

    def settle(self) -> None:
        """Once warm, before the first fork: what each run's child resets is found here
        once (walking every module takes a child 5 ms), and every object the zygote
        holds is moved out of the garbage collector's sight, so a child's collections
        neither scan them nor copy the pages they sit on."""
        self.awx_display = list(in_child.awx_display_modules())
        self.prepared = in_child.prepare()
        gc.collect()
        gc.freeze()

    def _single_threaded(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while threading.active_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        return threading.active_count() == 1

    # the loop
    def serve(self) -> None:
        assert self.listener is not None
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.wakeup = (r, w)
        signal.set_wakeup_fd(w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "lifeline")
        self.sel.register(r, selectors.EVENT_READ, "child ended")
        self.spare_due = time.monotonic()
        while True:
            due = self.spare_due if self.spare is None else None
            if due is not None and due <= time.monotonic():
                self.fork_spare()
                continue
            for key, _ in self.sel.select(None if due is None
                                          else max(0.0, due - time.monotonic())):
                if key.data == "accept":
                    self.accept()
                elif key.data == "lifeline":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return
                elif key.data == "child ended":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(r, 4096):
                            pass
                    self.reap()
                else:
                    self.hear(key.fileobj)  # type: ignore[arg-type]

    def accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        try:
            request, fds = self.request(conn)
        except (OSError, ValueError) as exc:
            print(f"gameday executor: a bad request ({exc})", file=sys.stderr)
            conn.close()
            return
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self.tell(conn, {"error": "a request carries exactly one output pipe"})
            conn.close()
            return
        if not self._single_threaded(1.0):
            os.close(fds[0])
            names = ", ".join(t.name for t in threading.enumerate())
            self.tell(conn, {"error": f"the zygote is not single-threaded ({names})"})
            conn.close()
            return
        slow = None
        if request.get("fast"):
            slow = self.fast or fastpath.broken()
            if slow:  # this run goes Ansible's own way; the caller says why
                self.fast, request["fast"] = slow, False
        pid = self.hand_to_spare(request, fds[0]) or self.fork(request, fds[0], conn)
        os.close(fds[0])
        self.runs[pid] = conn
        self.conns[conn] = pid
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, "run")
        self.tell(conn, {"pid": pid, "fast": bool(request.get("fast")), "slow": slow})

    def request(self, conn: socket.socket, timeout: float | None = REPLY_TIMEOUT_S
                ) -> tuple[dict[str, Any], list[int]]:
        conn.settimeout(timeout)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 1)
        try:
            while not data.endswith(b"\n"):
                chunk = conn.recv(1 << 16)
                if not chunk:
                    raise ValueError("the request ended early")
                data += chunk
            request: dict[str, Any] = json.loads(data)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return request, list(fds)

    def tell(self, conn: socket.socket, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(True)
            conn.settimeout(5)
            conn.sendall(json.dumps(message).encode() + b"\n")

    def hear(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        pid = self.conns.get(conn)
        if not data:  # the caller hung up (or died): the run goes with it
            self.kill(pid)
            self.forget(conn)
        elif b"cancel" in data:
            self.kill(pid)

    def kill(self, pid: int | None) -> None:
        if pid is not None and pid in self.runs:
            trees.kill_run(pid)
            self.kill_tasks(pid)

    def tasks_file(self, pid: int) -> Path:
        """Where a fast run records its task processes (``fastpath``)."""
        return self.dir / f"tasks-{pid}"

    def kill_tasks(self, pid: int) -> None:
        """A fast run's task processes live under Mitogen's multiplexer, a child of the
        zygote, not under the run: SIGKILL each the run recorded, with everything below
        it, while it is still one of the zygote's (a recorded pid that ended may since
        name another process)."""
        recorded = fastpath.task_pids(self.tasks_file(pid))
        if not recorded:
            return
        ours = trees.descendants(os.getpid())
        for task in recorded:
            if task not in ours:
                continue
            with contextlib.suppress(OSError):
                os.kill(task, signal.SIGSTOP)  # it starts nothing more while we look
            for below in trees.descendants(task):
                with contextlib.suppress(OSError):
                    os.kill(below, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.kill(task, signal.SIGKILL)

    def forget(self, conn: socket.socket) -> None:
        pid = self.conns.pop(conn, None)
        if pid is not None and pid in self.runs:
            self.runs[pid] = None
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(conn)
        conn.close()

    def reap(self) -> None:
        if self.spare is not None and _ended(self.spare[0]):
            self.spare[1].close()
            self.spare = None
            self._spare_failed("the spare child ended before its run")
        for pid in list(self.runs):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours to reap after all: its status is lost
                done, status = pid, -1
            if not done:
                continue
            conn = self.runs.pop(pid)
            self.tasks_file(pid).unlink(missing_ok=True)
            if self.spare is None and not self.spare_failures:
                self.spare_due = time.monotonic()
            if conn is not None:
                if status == -1:
                    self.tell(conn, {"rc": None})
                elif os.WIFSIGNALED(status):
                    self.tell(conn, {"signal": os.WTERMSIG(status)})
                else:
                    self.tell(conn, {"rc": os.waitstatus_to_exitcode(status)})
                self.forget(conn)

    def shutdown(self) -> None:
        self.drop_spare()
        for pid in list(self.runs):
            self.kill(pid)
        for pid in list(self.runs):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for conn in list(self.conns):
            conn.close()
        if self.listener is not None:
            self.listener.close()

    # the children
    def fork(self, request: dict[str, Any], out: int, conn: socket.socket) -> int:
        """A child for ``request`` forked now, when no spare was waiting. It closes the
        caller's connection (``conn``, not yet among ``conns``): the caller must see it
        close when the zygote goes, not when the run's last worker does."""
        def body(blocked: set[signal.Signals], zygote: int) -> NoReturn:
            conn.close()
            self.child(request, out, blocked, zygote)

        return self._fork(body)

    def fork_spare(self) -> None:
        """A child forked ahead of its run: it sets itself up (its process group, its
        signals, Ansible's state put back) and waits for the run, which then starts
        without waiting for either (``hand_to_spare``). Forked while the zygote is
        single-threaded only; otherwise tried again a little later."""
        self.spare_due = None
        if threading.active_count() > 1:
            self.spare_due = time.monotonic() + SPARE_AFTER_S
            return
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError as exc:
            self._spare_failed(f"no socket for a spare child ({exc})")
            return

        def wait_for_run(blocked: set[signal.Signals], zygote: int) -> NoReturn:
            ours.close()
            self.spare_child(theirs, blocked, zygote)

        try:
            pid = self._fork(wait_for_run)
        except OSError as exc:  # out of processes or memory: runs are forked when asked
            ours.close()
            self._spare_failed(f"no spare child ({exc})")
            return
        finally:
            theirs.close()
        self.spare = (pid, ours)

    def _spare_failed(self, why: str) -> None:
        """A spare that could not be forked, or died waiting: tried again later, each
        time twice as late (up to a minute), so a spare that cannot live costs little."""
        self.spare_failures += 1
        wait = min(60.0, SPARE_AFTER_S * 2 ** min(self.spare_failures, 6))
        print(f"gameday executor: {why}; another in {wait:g} s", file=sys.stderr)
        self.spare_due = time.monotonic() + wait

    def hand_to_spare(self, request: dict[str, Any], out: int) -> int | None:
        """Give ``request`` and its output pipe to the spare child; its pid, or None
        when there is no spare (or it did not take them: it is killed)."""
        if self.spare is None:
            return None
        (pid, conn), self.spare = self.spare, None
        self.spare_due = time.monotonic() + SPARE_AFTER_S  # once this run is under way
        payload = json.dumps(request).encode() + b"\n"
        try:
            conn.settimeout(REPLY_TIMEOUT_S)  # a wedged spare never stalls the zygote
            sent = socket.send_fds(conn, [payload], [out])
            conn.sendall(payload[sent:])
        except OSError:
            trees.kill_run(pid)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return None
        finally:
            conn.close()
        self.spare_failures = 0
        return pid

    def drop_spare(self) -> None:
        if self.spare is not None:
            (pid, conn), self.spare = self.spare, None
            conn.close()  # it reads the end of its socket and exits
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def _fork(self, body: Callable[[set[signal.Signals], int], NoReturn]) -> int:
        blocked = {signal.SIGCHLD, signal.SIGTERM}
        zygote = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    body(blocked, zygote)
                finally:
                    os._exit(250)
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)  # also done in the child: whichever comes first
            return pid
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)

    def child(self, request: dict[str, Any], out: int, blocked: set[signal.Signals],
              zygote: int) -> NoReturn:
        code = 250
        try:
            self._set_up(blocked, zygote)
            code = self._run(request, out)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            _exit(code)

    def spare_child(self, conn: socket.socket, blocked: set[signal.Signals],
                    zygote: int) -> NoReturn:
        code = 250
        try:
            self._set_up(blocked, zygote)
            try:
                request, fds = self.request(conn, timeout=None)
            except (OSError, ValueError):  # the zygote went, or let this spare go
                os._exit(0)
            finally:
                conn.close()
            if len(fds) != 1:
                os._exit(250)
            code = self._run(request, fds[0])
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            _exit(code)

    def _set_up(self, blocked: set[signal.Signals], zygote: int) -> None:
        """What every child does before its run is known."""
        os.setpgid(0, 0)  # its own process group: a cancel kills all of it
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        in_child.die_with(zygote)
        self._close_inherited()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        atexit._clear()  # the zygote's clean-up is not the run's
        in_child.reset_ansible(self.config_messages, self.awx_display)
        in_child.use_prepared(self.prepared)

    def _run(self, request: dict[str, Any], out: int) -> int:
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["argv"])
        in_child.isolated_cache(self.awx_display)
        if request.get("fast") and not self.fast:
            fastpath.enter_run(str(self.tasks_file(os.getpid())))
        from ansible.cli.playbook import PlaybookCLI

        try:
            PlaybookCLI.cli_executor(list(request["argv"]))
            return 0
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)

    def _close_inherited(self) -> None:
        with contextlib.suppress(OSError):
            self.sel.close()
        if self.spare is not None:
            self.spare[1].close()
        for conn in list(self.conns):
            conn.close()
        if self.listener is not None:
            self.listener.close()
        if self.wakeup is not None:
            for fd in self.wakeup:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _exit(code: int) -> NoReturn:
    """A child's end: what its run registered at exit (temporary files), its output."""
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _ended(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _say(hello: Any, message: dict[str, Any]) -> bool:
    """The one line the parent waits for; False if it is no longer there."""
    try:
        hello.write(json.dumps(message) + "\n")
        hello.close()
    except OSError:
        with contextlib.suppress(OSError):
            hello.close()
        return False
    return True
