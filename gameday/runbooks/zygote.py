"""The warm executor's zygote: the single-threaded process that imported Ansible once and
forks one child per runbook run (the protocol and the reasons are in ``executor``'s
docstring), and how a run's whole process tree is killed, whichever path ran it.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from gameday.runbooks import fastpath
from gameday.runbooks.executor import INVENTORY, REPLY_TIMEOUT_S, fingerprint

log = logging.getLogger(__name__)

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

        self.config_messages = _config_messages()  # every run reports them, as a cold one
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
        self.awx_display = list(_awx_display_modules())
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
        while True:
            for key, _ in self.sel.select():
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
        pid = self.fork(request, fds[0])
        os.close(fds[0])
        self.runs[pid] = conn
        self.conns[conn] = pid
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, "run")
        self.tell(conn, {"pid": pid, "fast": bool(request.get("fast")), "slow": slow})

    def request(self, conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
        conn.settimeout(REPLY_TIMEOUT_S)
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
            _kill_run(pid)
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
        ours = _descendants(os.getpid())
        for task in recorded:
            if task not in ours:
                continue
            with contextlib.suppress(OSError):
                os.kill(task, signal.SIGSTOP)  # it starts nothing more while we look
            for below in _descendants(task):
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
        for pid in list(self.runs):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours to reap after all: its status is lost
                done, status = pid, -1
            if not done:
                continue
            conn = self.runs.pop(pid)
            self.tasks_file(pid).unlink(missing_ok=True)
            if conn is not None:
                if status == -1:
                    self.tell(conn, {"rc": None})
                elif os.WIFSIGNALED(status):
                    self.tell(conn, {"signal": os.WTERMSIG(status)})
                else:
                    self.tell(conn, {"rc": os.waitstatus_to_exitcode(status)})
                self.forget(conn)

    def shutdown(self) -> None:
        for pid in list(self.runs):
            self.kill(pid)
        for pid in list(self.runs):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for conn in list(self.conns):
            conn.close()
        if self.listener is not None:
            self.listener.close()

    # the child
    def fork(self, request: dict[str, Any], out: int) -> int:
        blocked = {signal.SIGCHLD, signal.SIGTERM}
        zygote = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    self.child(request, out, blocked, zygote)
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
            os.setpgid(0, 0)  # its own process group: a cancel kills all of it
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            _die_with(zygote)
            self._close_inherited()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            sys.argv = list(request["argv"])
            atexit._clear()  # the zygote's clean-up is not the run's
            _reset_ansible(self.config_messages, self.awx_display)
            if request.get("fast") and not self.fast:
                fastpath.enter_run(str(self.tasks_file(os.getpid())))
            from ansible.cli.playbook import PlaybookCLI

            try:
                PlaybookCLI.cli_executor(list(request["argv"]))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                atexit._run_exitfuncs()  # what the run registered (temporary files)
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _close_inherited(self) -> None:
        with contextlib.suppress(OSError):
            self.sel.close()
        for conn in list(self.conns):
            conn.close()
        if self.listener is not None:
            self.listener.close()
        if self.wakeup is not None:
            for fd in self.wakeup:
                with contextlib.suppress(OSError):
                    os.close(fd)


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


def _kill_run(pid: int) -> None:
    """SIGKILL a run: the child's process group, and the groups its descendants lead.
    Ansible's workers each start a session of their own (``os.setsid``), so the task's
    command is in the worker's group, not the child's: killing the child's group alone
    (what ansible-runner does) leaves a running ``sleep 30`` behind. The child is
    stopped first so that it starts no new worker while its tree is read."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGSTOP)
    ours = os.getpgid(0)
    for _ in range(3):  # again, for what forked while we looked
        groups = set()
        for descendant in _descendants(pid):
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(descendant))
        groups -= {pid, ours}
        if not groups:
            break
        for group in groups:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def kill_fallback_run(private_data_dir: str) -> bool:
    """Kill, at once and whole, the ``ansible-playbook`` that ansible-runner started in
    this process for ``private_data_dir`` (the fallback path): ansible-runner's own
    cancel kills the playbook's process group only, seconds later, and leaves the
    task's command running in its worker's session. Its argv names the run's directory
    (``-i DIR/inventory/...``), which tells it from other runs going on here. False if
    no such process (it ended, or has not started)."""
    marker = os.fsencode(os.path.join(private_data_dir, ""))
    for pid in sorted(_descendants(os.getpid())):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            leader = os.getsid(pid) == pid  # pexpect starts it in a session of its own
        except OSError:
            continue
        if leader and any(os.path.basename(a) == b"ansible-playbook" for a in argv[:2]) \
                and any(a.startswith(marker) for a in argv):
            _kill_run(pid)
            return True
    return False


def _descendants(root: int) -> set[int]:
    """The processes below ``root`` (Linux: read from /proc; elsewhere none)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _die_with(zygote: int) -> None:
    """Linux: the child is killed if the zygote dies (it would otherwise run on,
    unsupervised). Elsewhere the zygote's lifeline still ends its runs."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != zygote:  # it died before that took effect
        os._exit(250)


def _config_messages() -> dict[str, Any]:
    """What Ansible's configuration had to say when it was read (warnings,
    deprecations): the first playbook run reports and forgets them."""
    import copy

    from ansible.constants import config  # type: ignore[import-untyped]

    return {name: copy.copy(getattr(config, name))
            for name in ("_errors", "WARNINGS", "DEPRECATED") if hasattr(config, name)}


def _reset_ansible(config_messages: dict[str, Any], awx_display: list[Any]) -> None:
    """Undo what the zygote's imports and warm-up left in Ansible's process-wide state, so
    the child starts as ``ansible-playbook`` would: the parsed CLI arguments (a
    singleton: left alone, the child would run with the warm-up's), vault secrets
    (refuses a second initialisation), warnings already shown, the task ids' random
    prefix, and ansible-runner's display callback context (the run's artifact
    directory is read when it is created), what the configuration had to say. Each
    step is skipped where this Ansible has no such thing."""
    import copy
    import secrets
    import warnings

    from ansible import context
    from ansible.constants import config
    from ansible.utils.context_objects import (  # type: ignore[import-untyped]
        CLIArgs,
        GlobalCLIArgs,
    )
    from ansible.utils.display import Display  # type: ignore[import-untyped]

    context.CLIARGS = CLIArgs({})
    GlobalCLIArgs._Singleton__instance = None
    for name, value in config_messages.items():
        setattr(config, name, copy.copy(value))
    with contextlib.suppress(ImportError):
        from ansible.parsing.vault import VaultSecretsContext  # type: ignore[import-untyped]

        VaultSecretsContext._current = None
    display = Display()
    for name in ("_warns", "_deprecations", "_errors"):
        seen = getattr(display, name, None)
        if seen is not None:
            seen.clear()
    with contextlib.suppress(ImportError):
        import ansible.utils.vars as ansible_vars  # type: ignore[import-untyped]

        ansible_vars.cur_id = 0
        ansible_vars.random_int = f"{secrets.randbelow(2 ** 32):08x}"
    for module in awx_display:
        context_ = module.event_context
        context_._global_ctx = {}
        context_._local = threading.local()
        if os.environ.get("AWX_ISOLATED_DATA_DIR"):
            context_.cache = module.IsolatedFileWrite()
    # The plugin loader is initialised once per process; the zygote did it.
    warnings.filterwarnings("ignore", message="AnsibleCollectionFinder has already been")


def _awx_display_modules() -> Iterator[Any]:
    for module in list(sys.modules.values()):
        callback = getattr(module, "CallbackModule", None)
        if (getattr(callback, "CALLBACK_NAME", None) == "awx_display"
                and hasattr(module, "event_context") and hasattr(module, "IsolatedFileWrite")):
            yield module
