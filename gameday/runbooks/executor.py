"""The warm runbook executor: Ansible imported (and warmed) once per process, each run
in its own forked child, so a runbook starts close to Ansible's own floor.

Forking a process that has threads is unsafe (a lock held by another thread stays held
in the child), and ``gameday serve`` runs runbooks from a thread pool. So the fork
happens in a *zygote*: a single-threaded Python process started once (``subprocess``,
fork + exec, safe from any thread), which imports Ansible and ansible-runner's display
callback, optionally runs one throwaway playbook to warm the plugin loader and the
module cache, and then forks one child per run. The child resets Ansible's
process-wide singletons (the CLI-args context, vault secrets, display de-duplication,
the display callback's context), runs the playbook with Ansible's own ``PlaybookCLI``
(what ``ansible-playbook`` runs) and exits. Runs never share a process, so nothing
leaks from one to the next.

The run itself is ansible-runner's: the caller prepares it with ``init_runner`` (the
same ``env/``, ``inventory/`` and ``artifacts/<ident>/command`` as the fallback
path), the child writes ansible-runner's callback stream (``awx_display``) to a pipe,
and ``WarmExecutor.run`` reads it through ansible-runner's ``OutputEventFilter`` and
``Runner.event_callback``, so ``job_events/``, ``stdout``, ``status`` and ``rc`` and
every event handed to the caller are the ones ``ansible_runner.run`` produces. (Only
line endings differ: ansible-runner reads through a pty, which writes ``\\r\\n``.)

Protocol: the zygote listens on a Unix socket in a private (0700) directory. A run is
one connection: a JSON request line (argv, cwd, environment) carrying the write end of
the output pipe (``SCM_RIGHTS``); the reply ``{"pid": N}``; later ``{"rc": N}`` or
``{"signal": N}`` when the child ends. ``{"op": "cancel"}`` from the caller, or the
connection closing, kills the run at once: SIGKILL to the child's process group and to
the groups its descendants lead (Ansible's workers start sessions of their own, so
killing the child's group alone, as ansible-runner does, leaves the task's command
running). The zygote's stdin is the parent's lifeline: at EOF it kills what runs and
exits.

A process starts its executor with ``prewarm()`` (``gameday serve`` and a game day, when
they start): the zygote imports Ansible and runs its warm-up while the process gets on
with other things. One that did not (a one-shot ``gameday runbook run``) runs its first
runbook through ansible-runner, because a zygote started for that one run would make it
slower (two interpreters importing Ansible instead of one); if it runs a second one, it
starts the executor after that, for the next ones.

``GAMEDAY_WARM_EXECUTOR=0`` (also ``false``, ``no``, ``off``) turns it off; the runs
then go through ``ansible_runner.run_async`` as before. When the executor cannot start,
or cannot take a run (a run whose ``ANSIBLE_*`` settings differ from the ones the
zygote imported Ansible with), the run goes that way too and a log line says why.
The child's stdin is ``/dev/null`` (ansible-runner gives a pty): a playbook that
prompts fails instead of waiting.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

log = logging.getLogger(__name__)

SETTING = "GAMEDAY_WARM_EXECUTOR"
START_TIMEOUT_S = 60.0   # import Ansible (and warm up) on a loaded machine
REPLY_TIMEOUT_S = 15.0   # the zygote answers a request once it has forked
DRAIN_S = 5.0            # output still arriving after the child ended
CANCEL_WAIT_S = 15.0     # an interrupted run: how long to wait for the kill to land
CANCELED_RC = 254        # ansible-runner's rc for a canceled run
MAX_RESTARTS = 3         # a zygote that died after starting is replaced this often
MARKER = "GAMEDAY_RUN"   # lease.MARKER: the zygote outlives a game day, so it goes without
PER_RUN = frozenset({"ANSIBLE_CACHE_PLUGIN_CONNECTION"})  # set per run by ansible-runner
AT_IMPORT = frozenset({"ORIGINAL_STDOUT_CALLBACK"})  # read when the callback is imported
INVENTORY: dict[str, Any] = {"all": {"hosts": {"localhost": {
    "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}


class Unavailable(Exception):
    """The warm executor cannot take this run, and nothing of it ran: fall back."""


class NotStarted(Unavailable):
    """This process has not started its warm executor: starting it for one run costs
    more than it saves (Python and Ansible imported twice), so the run falls back; a
    process that runs a second runbook starts the executor after it, for the next ones.
    ``start_now``: this was that second one."""

    def __init__(self, why: str, start_now: bool) -> None:
        super().__init__(why)
        self.start_now = start_now


# -- how a runbook is handed to ansible-runner (both paths) ------------------------------
def ansible_envvars(env: Mapping[str, str] | None) -> dict[str, str]:
    """The environment variables a run adds: the interpreter's ``bin/`` first on PATH
    (``ansible-playbook`` and ``gameday`` live there), Ansible's output plain, Python's
    warnings off, then ``env`` (a game day's target, the store).

    Warnings off: a dependency that warns when Ansible imports it (cryptography's
    deprecations, say) would otherwise print into the run's output ahead of the play, as
    a first job event the warm path never has; an operator reading a runbook's output
    has no use for it. It holds for the run's whole process tree, the commands a runbook
    runs included, on both paths alike."""
    env = dict(env or {})
    bindir = str(Path(sys.executable).parent)
    path = env.pop("PATH", os.environ.get("PATH", ""))
    return {"PATH": f"{bindir}{os.pathsep}{path}",
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "PYTHONWARNINGS": "ignore",
            **env}


def runner_kwargs(playbook: Path, data_dir: Path, params: Mapping[str, Any], *,
                  env: Mapping[str, str] | None, check: bool) -> dict[str, Any]:
    """``ansible_runner`` arguments for one run: extra vars go as data (a JSON file
    Ansible reads with ``-e @file``), never through a shell."""
    return {"private_data_dir": str(data_dir), "playbook": str(playbook.resolve()),
            "inventory": INVENTORY, "extravars": dict(params),
            "envvars": ansible_envvars(env), "quiet": True,
            "cmdline": "--check --diff" if check else None, "ident": "run",
            # the fallback looks for a cancel this often (ansible-runner's default: 5 s)
            "settings": {"pexpect_timeout": 0.1}}


def fingerprint(env: Mapping[str, str]) -> dict[str, str]:
    """The settings Ansible reads once, when it is imported: a run whose settings
    differ cannot use a zygote that imported Ansible with others."""
    return {k: v for k, v in env.items()
            if (k.startswith("ANSIBLE_") and k not in PER_RUN) or k in AT_IMPORT}


def enabled() -> tuple[bool, str]:
    value = os.environ.get(SETTING, "1").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False, f"turned off ({SETTING}={os.environ[SETTING]})"
    return True, ""


# -- the caller's side ----------------------------------------------------------------------
class WarmExecutor:
    """One zygote for this process, started on first use (or by ``prewarm``), shared by
    every thread. ``run`` is safe from any thread."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._dir: Path | None = None
        self._ready = False
        self._fingerprint: dict[str, str] = {}
        self._failed: str | None = None  # why it cannot start: sticky
        self._restarts = 0
        self._declined = 0  # runs that found it not started

    @property
    def started(self) -> bool:
        return self._proc is not None or self._failed is not None

    def not_started(self) -> NotStarted:
        """Why a run is not taken by an executor nobody started (``NotStarted``)."""
        with self._lock:
            self._declined += 1
            again = self._declined >= 2
        return NotStarted("the warm executor was not started in this process (prewarm): "
                          + ("it starts after this run, for the next ones" if again else
                             "it starts if this process runs another runbook"), again)

    # zygote lifecycle
    def command(self, workdir: Path, warm_up: bool) -> list[str]:
        """How the zygote starts (tests replace it to make it fail)."""
        root = str(Path(__file__).resolve().parents[2])
        code = (f"import sys; sys.path.append({root!r}); "
                f"from gameday.runbooks.executor import zygote_main; "
                f"zygote_main({str(workdir)!r}, {warm_up!r})")
        return [self.python, "-u", "-c", code]

    def start(self, warm_up: bool = True) -> None:
        """Start the zygote if it is not running, without waiting for it."""
        with self._lock:
            if self._failed is None and self._proc is None:
                self._start(warm_up)

    def _start(self, warm_up: bool) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="gameday-executor-"))
        env = {k: v for k, v in os.environ.items() if k != MARKER}
        env.update(ansible_envvars(None))
        self._log = open(self._dir / "zygote.log", "wb")  # noqa: SIM115 (closed in _stop)
        self._ready = False
        try:
            self._proc = subprocess.Popen(
                self.command(self._dir, warm_up), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=self._dir,
                start_new_session=True)
        except OSError as exc:
            self._failed = f"the warm executor could not start ({exc})"
            self._stop()

    def ensure(self, timeout: float = START_TIMEOUT_S) -> None:
        """Started and answering, or Unavailable saying why not."""
        with self._lock:
            if self._failed:
                raise Unavailable(self._failed)
            if self._ready and self._proc is not None and self._proc.poll() is not None:
                why = f"the warm executor exited ({self._exit_reason()})"
                self._stop()
                if self._restarts >= MAX_RESTARTS:
                    self._failed = f"{why}, {MAX_RESTARTS} times"
                    raise Unavailable(self._failed)
                self._restarts += 1
                log.warning("%s: starting another", why)
            if self._proc is None:
                self._start(warm_up=False)
                if self._failed:
                    raise Unavailable(self._failed)
            if not self._ready:
                self._handshake(timeout)

    def _handshake(self, timeout: float) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        out, line = self._proc.stdout, b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self._fail(f"the warm executor did not start within {timeout:.0f} s")
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    self._proc.wait(5)
                    self._fail(f"the warm executor could not start ({self._exit_reason()})")
                line += chunk
        try:
            hello = json.loads(line)
        except ValueError:
            self._fail(f"the warm executor said {line[:200]!r}")
        if not hello.get("ready"):
            self._fail(f"the warm executor could not start: {hello.get('error')}")
        self._fingerprint = hello["fingerprint"]
        self._ready = True

    def _fail(self, why: str) -> NoReturn:
        self._failed = why
        self._stop()
        raise Unavailable(why)

    def _exit_reason(self) -> str:
        assert self._proc is not None
        code = self._proc.returncode
        said = ""
        if self._dir is not None:
            with contextlib.suppress(OSError):
                lines = (self._dir / "zygote.log").read_text(errors="replace").splitlines()
                said = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
        what = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return f"{what}: {said[-300:]}" if said else what

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def at_exit(self) -> None:
        """The process is ending: cut the zygote's lifeline (it kills what runs, removes
        its directory and exits) without waiting for it, and never with a traceback (a
        second Ctrl-C may land here)."""
        with contextlib.suppress(BaseException):
            self._stop(wait=False)

    def _stop(self, wait: bool = True) -> None:
        proc, ready = self._proc, self._ready
        self._proc, self._ready = None, False
        if proc is not None:
            if proc.stdin:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # its lifeline: it kills what runs and exits
            if not ready:  # still importing or warming up: it would not hear that yet
                proc.kill()
            try:
                proc.wait(2 if wait else 0.2)
            except subprocess.TimeoutExpired:
                if wait:
                    proc.kill()
                    proc.wait()
            if proc.stdout:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # one run
    def run(self, runner: Any, *, cancel: threading.Event,
            tick: Callable[[], None] | None = None) -> None:
        """Run ansible-runner's prepared ``runner`` (``init_runner``) in a fresh child of
        the zygote, writing what ``Runner.run`` writes and calling its event handler;
        sets ``runner.status`` and ``runner.rc``. Raises Unavailable, before anything
        ran, when the zygote cannot take it."""
        config = runner.config
        self.ensure()
        theirs, ours = self._fingerprint, fingerprint(config.env)
        if theirs != ours:
            keys = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
            raise Unavailable("its Ansible settings differ from the ones the warm executor "
                              f"imported Ansible with ({', '.join(keys)})")
        child = self._spawn(list(config.command), str(config.cwd), dict(config.env))
        try:
            _follow(runner, child, cancel, tick)
        finally:
            child.close()

    def _spawn(self, argv: list[str], cwd: str, env: dict[str, str]) -> _Child:
        with self._lock:
            where = self._dir / "sock" if self._dir is not None else None
        if where is None:
            raise Unavailable("the warm executor stopped")
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        read_end, write_end = os.pipe()
        child = _Child(conn, read_end)
        try:
            conn.settimeout(REPLY_TIMEOUT_S)
            try:
                conn.connect(str(where))
                payload = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode() + b"\n"
                sent = socket.send_fds(conn, [payload], [write_end])
                conn.sendall(payload[sent:])
            finally:
                os.close(write_end)
            reply = child.reply()
        except (OSError, ValueError) as exc:
            child.close()
            raise Unavailable(f"the warm executor did not take the run ({exc})") from exc
        except BaseException:
            child.close()  # the zygote kills a child whose connection closes
            raise
        if "pid" not in reply:
            child.close()
            raise Unavailable(f"the warm executor refused the run: {reply.get('error')}")
        child.pid = int(reply["pid"])
        conn.setblocking(False)
        return child


class _Child:
    """One run's connection to the zygote, and the read end of its output."""

    def __init__(self, conn: socket.socket, out: int) -> None:
        self.conn, self.out, self.pid = conn, out, 0
        self._buf = b""
        self._out_open = True

    def reply(self) -> dict[str, Any]:
        """The next message (blocking, with the socket's timeout)."""
        while b"\n" not in self._buf:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise ConnectionError("the warm executor closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def messages(self) -> list[dict[str, Any]] | None:
        """What the zygote has said since (non-blocking); None once it hung up."""
        try:
            chunk = self.conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            chunk = b""
        self._buf += chunk
        lines = self._buf.split(b"\n")
        self._buf = lines.pop()
        found = [json.loads(line) for line in lines if line.strip()]
        return found if chunk else found or None

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.setblocking(True)
            self.conn.settimeout(1)
            self.conn.sendall(b'{"op": "cancel"}\n')
            self.conn.setblocking(False)

    def kill_group(self) -> None:
        """The zygote is gone: kill what is left of the run's process group."""
        if self.pid:
            with contextlib.suppress(OSError):
                os.killpg(self.pid, signal.SIGKILL)

    def close(self) -> None:
        self.conn.close()
        if self._out_open:
            self._out_open = False
            os.close(self.out)


def _follow(runner: Any, child: _Child, cancel: threading.Event,
            tick: Callable[[], None] | None) -> None:
    """``Runner.run`` for a process the zygote started: the same artifacts, the same
    status callbacks and events, read from the child's output pipe."""
    from ansible_runner.utils import OutputEventFilter, cleanup_artifact_dir

    config = runner.config
    runner.status_callback("starting")
    artifact_dir = config.artifact_dir
    os.makedirs(artifact_dir, mode=0o700, exist_ok=True)
    job_events = os.path.join(artifact_dir, "job_events")
    if not os.path.exists(job_events):
        os.mkdir(job_events, 0o700)
    command = os.path.join(artifact_dir, "command")
    with codecs.open(command, "w", encoding="utf-8") as f:
        os.chmod(command, stat.S_IRUSR | stat.S_IWUSR)
        json.dump({"command": config.command, "cwd": config.cwd, "env": config.env}, f,
                  ensure_ascii=False)
    if config.ident is not None:
        cleanup_artifact_dir(os.path.join(artifact_dir, ".."), config.rotate_artifacts)
    handles: list[Any] = [None, None]
    if not config.suppress_output_file:
        stdout = os.path.join(artifact_dir, "stdout")
        os.close(os.open(stdout, os.O_CREAT, stat.S_IRUSR | stat.S_IWUSR))
        # closed by the filters' close(), as in Runner.run
        handles = [codecs.open(stdout, "w", encoding="utf-8"),  # noqa: SIM115
                   codecs.open(os.path.join(artifact_dir, "stderr"), "w",  # noqa: SIM115
                               encoding="utf-8")]
    out, err = (OutputEventFilter(h, runner.event_callback, config.suppress_ansible_output,
                                  output_json=config.json_mode) for h in handles)
    runner.status_callback("running")
    state = _RunState(child, out)
    try:
        state.pump(cancel, tick)
    except BaseException:  # Ctrl-C, SIGTERM, a failing tick: stop the playbook first
        state.canceled = True
        child.cancel()
        with contextlib.suppress(Exception):
            state.pump(None, None, limit=CANCEL_WAIT_S)
        raise
    finally:
        state.finish()
        out.close()
        err.close()
        runner.canceled = state.canceled
        runner.rc = CANCELED_RC if state.canceled else state.rc
        runner.status_callback("canceled" if state.canceled else
                               "successful" if runner.rc == 0 else "failed")
        for name, data in (("status", runner.status), ("rc", runner.rc)):
            path = os.path.join(artifact_dir, name)
            if not os.path.exists(path):
                os.close(os.open(path, os.O_CREAT, stat.S_IRUSR | stat.S_IWUSR))
            with open(path, "w") as f:
                f.write(str(data))


class _RunState:
    """Reads one run's output and the zygote's messages until the child has ended and
    its output is drained."""

    def __init__(self, child: _Child, out: Any) -> None:
        self.child, self.out = child, out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.rc: int | None = None
        self.ended = False
        self.out_open = True
        self.canceled = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(child.out, selectors.EVENT_READ, "out")
        self.sel.register(child.conn, selectors.EVENT_READ, "conn")

    def pump(self, cancel: threading.Event | None, tick: Callable[[], None] | None,
             limit: float | None = None) -> None:
        deadline = time.monotonic() + limit if limit is not None else None
        drain_until: float | None = None
        next_tick = time.monotonic() + 0.1
        while self.out_open or not self.ended:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                return
            if drain_until is not None and now > drain_until:
                return  # something the run started still holds its output open
            if cancel is not None and cancel.is_set() and not self.canceled:
                self.canceled = True
                self.child.cancel()
            for key, _ in self.sel.select(0.1):
                if key.data == "out":
                    self._read()
                else:
                    self._hear()
            if self.ended and drain_until is None:
                drain_until = time.monotonic() + DRAIN_S
            if tick is not None and time.monotonic() >= next_tick:
                next_tick = time.monotonic() + 0.1
                tick()

    def _read(self) -> None:
        data = os.read(self.child.out, 65536)
        self.out.write(self.decoder.decode(data, final=not data))
        if not data:
            self.out_open = False
            self.sel.unregister(self.child.out)

    def _hear(self) -> None:
        said = self.child.messages()
        if said is None:  # the zygote hung up
            if not self.ended:
                log.warning("the warm executor went away during a run")
                self.child.kill_group()
                self.ended = True
            self.sel.unregister(self.child.conn)
            return
        for message in said:
            if "rc" in message or "signal" in message:
                self.ended = True
                self.rc = message.get("rc")

    def finish(self) -> None:
        """Whatever is still buffered (the output's last partial line)."""
        tail = self.decoder.decode(b"", final=True)
        if tail:
            self.out.write(tail)
        self.sel.close()


# -- this process's executor ---------------------------------------------------------------
_default: WarmExecutor | None = None
_default_lock = threading.Lock()


def default() -> WarmExecutor:
    """This process's executor (created, not started)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = WarmExecutor()
            atexit.register(_default.at_exit)
        return _default


def prewarm() -> None:
    """Start the warm executor now, without waiting: Ansible is imported and one
    throwaway playbook run while the process gets on with other things, so the first
    runbook starts warm. ``gameday serve`` and a game day call it when they start; a
    process that did not starts it after its second runbook (``NotStarted``)."""
    if enabled()[0]:
        default().start(warm_up=True)


# -- the zygote --------------------------------------------------------------------------
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

    def main(self, warm_up: bool) -> int:
        hello = os.fdopen(os.dup(1), "w")
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 1)  # Ansible's output during the warm-up goes nowhere
        os.close(null)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
        try:
            self.prepare()
            if warm_up:
                self.warm_up()
        except BaseException as exc:
            if not _say(hello, {"ready": False, "error": f"{type(exc).__name__}: {exc}"}):
                shutil.rmtree(self.dir, ignore_errors=True)  # nobody will read why
            raise  # the traceback goes to zygote.log, where the parent reads the reason
        try:
            if _say(hello, {"ready": True, "pid": os.getpid(),
                            "fingerprint": self.fingerprint}):
                self.serve()
        finally:
            self.shutdown()
            # our directory (socket, warm-up, Ansible's scratch): the parent removes it
            # too, unless it went away first
            shutil.rmtree(self.dir, ignore_errors=True)
        return 0

    def prepare(self) -> None:
        """The environment a run's ``ansible-playbook`` would have (as ansible-runner
        prepares it), then Ansible imported under it."""
        from ansible_runner.interface import init_runner

        warm = self.dir / "warm-up"
        warm.mkdir()
        playbook = warm / "warm-up.yml"
        playbook.write_text(json.dumps(WARM_UP_PLAY))  # JSON is YAML
        runner = init_runner(private_data_dir=str(warm), playbook=str(playbook),
                             inventory=INVENTORY, envvars={}, quiet=True, ident="run",
                             cancel_callback=lambda: False)
        env = dict(runner.config.env)
        self.fingerprint = fingerprint(env)
        # Ansible's own scratch directory: inside ours, so it goes when we go
        env.setdefault("ANSIBLE_LOCAL_TEMP", str(self.dir / "tmp"))
        os.environ.clear()
        os.environ.update(env)
        os.chdir(runner.config.cwd)
        self.warm_argv = list(runner.config.command)
        # what every run needs, imported once
        import ansible.cli.playbook  # type: ignore[import-untyped]  # noqa: F401
        import ansible.executor.playbook_executor  # type: ignore[import-untyped]  # noqa: F401

        self.config_messages = _config_messages()  # every run reports them, as a cold one
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
        self._single_threaded(5.0)

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
        pid = self.fork(request, fds[0])
        os.close(fds[0])
        self.runs[pid] = conn
        self.conns[conn] = pid
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, "run")
        self.tell(conn, {"pid": pid})

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
            _reset_ansible(self.config_messages)
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


def _reset_ansible(config_messages: dict[str, Any]) -> None:
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
    for module in _awx_display_modules():
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
