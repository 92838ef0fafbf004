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
leaks from one to the next. The zygote keeps one child forked and reset ahead of time
(a *spare*, waiting on a socket of its own): the next run is handed to it, and its fork
and set-up are off the run's path; the spare is replaced once a run ends (or a second
after it was taken), and a run that finds none is forked there and then.

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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from gameday.runbooks import fastpath

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
TEAM_INVENTORY = "GAMEDAY_INVENTORY"  # a service target's (targets.service)
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
    Ansible reads with ``-e @file``), never through a shell. A game day on a team's
    service with an inventory (``GAMEDAY_INVENTORY`` in ``env``) runs against it, limited
    to the hosts the project's allowlist names (``[safety] hosts``) and this one."""
    team = (env or {}).get(TEAM_INVENTORY)
    limit = None
    if team:
        from gameday.core.settings import current

        limit = ",".join(("localhost", *current().safety.hosts))
    return {"private_data_dir": str(data_dir), "playbook": str(playbook.resolve()),
            "inventory": team or INVENTORY, "limit": limit, "extravars": dict(params),
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
        self._fast: str | None = "not started"  # why no run takes the fast path (fastpath)
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
                f"from gameday.runbooks.zygote import zygote_main; "
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
        self._fast = hello.get("fast", "the zygote does not offer it")
        if self._fast:
            log.info("the warm executor runs without its fast path: %s", self._fast)
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
                _kill_group(proc)
            try:
                proc.wait(2 if wait else 0.2)
            except subprocess.TimeoutExpired:
                if wait:
                    _kill_group(proc)
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
            tick: Callable[[], None] | None = None) -> str:
        """Run ansible-runner's prepared ``runner`` (``init_runner``) in a fresh child of
        the zygote, writing what ``Runner.run`` writes and calling its event handler;
        sets ``runner.status`` and ``runner.rc``, and says which path ran it:
        ``"mitogen"`` (the fast path, ``fastpath``) or ``"warm"``. Raises Unavailable,
        before anything ran, when the zygote cannot take it."""
        config = runner.config
        self.ensure()
        theirs, ours = self._fingerprint, fingerprint(config.env)
        if theirs != ours:
            keys = sorted(k for k in theirs.keys() | ours.keys() if theirs.get(k) != ours.get(k))
            raise Unavailable("its Ansible settings differ from the ones the warm executor "
                              f"imported Ansible with ({', '.join(keys)})")
        why = (self._fast or fastpath.available()
               or fastpath.why_not(config.playbook, config.env, TEAM_INVENTORY))
        if why and not self._fast:
            log.info("runbook %s runs without the fast path: %s",
                     Path(config.playbook).name, why)
        child = self._spawn(list(config.command), str(config.cwd), dict(config.env),
                            fast=not why)
        if not why and not child.fast:
            self._fast = why = child.slow or "the zygote took it without its fast path"
            log.warning("the warm executor's fast path stopped: %s", why)
        try:
            _follow(runner, child, cancel, tick)
        finally:
            child.close()
        return "warm" if why else "mitogen"

    def _spawn(self, argv: list[str], cwd: str, env: dict[str, str],
               fast: bool = False) -> _Child:
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
                payload = json.dumps({"argv": argv, "cwd": cwd, "env": env,
                                      "fast": fast}).encode() + b"\n"
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
        child.fast, child.slow = bool(reply.get("fast")), reply.get("slow")
        conn.setblocking(False)
        return child


class _Child:
    """One run's connection to the zygote, and the read end of its output."""

    def __init__(self, conn: socket.socket, out: int) -> None:
        self.conn, self.out, self.pid = conn, out, 0
        self.fast = False  # whether it took the fast path
        self.slow: str | None = None  # if not, and it was asked to: why
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


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the zygote and what shares its process group (it leads one of its own):
    during its warm-up, Mitogen's multiplexer and the interpreters it started. Killed
    alone there, the zygote leaves them behind for good (the multiplexer waits forever
    for threads of its own as it shuts down)."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


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
    os.makedirs(job_events, 0o700, exist_ok=True)  # the child's display callback may be first
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
