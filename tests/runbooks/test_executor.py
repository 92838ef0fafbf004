"""The warm runbook executor (``gameday.runbooks.executor``): runs forked from a warm zygote leave
what ansible-runner leaves, report the same events, stop at once when cancelled, never
see each other, and fall back to ansible-runner when the zygote cannot start. Each holds
on both warm paths: Mitogen's (``gameday.runbooks.fastpath``) and Ansible's own
strategy, which a run takes when the fast path cannot run it."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from serving import eventually

from gameday.runbooks import executor, fastpath
from gameday.runbooks.runbook import load_runbook, run_runbook


def playbook(tmp_path: Path, tasks: list, name: str = "probe") -> Path:
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump([{
        "name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                 "gameday_runbook": {"summary": name, "alerts": ["Probe"]}},
        "tasks": tasks}]))
    return path


@pytest.fixture(scope="module")
def zygote():
    """One warm executor for this module, warmed up as ``gameday serve`` warms it."""
    warm = executor.WarmExecutor()
    warm.start(warm_up=True)
    yield warm
    warm.stop()


@pytest.fixture
def warm(zygote, monkeypatch):
    monkeypatch.setattr(executor, "_default", zygote)
    monkeypatch.delenv(executor.SETTING, raising=False)
    monkeypatch.delenv(fastpath.SETTING, raising=False)
    return zygote


WARM_PATHS = ["mitogen", "warm"]


def take(path: str, monkeypatch) -> None:
    """Runs from here on go this way: "mitogen" (the fast path), "warm" (the warm
    executor with Ansible's own strategy) or "ansible-runner" (no warm executor)."""
    if path == "warm":
        monkeypatch.setenv(fastpath.SETTING, "0")
    elif path == "ansible-runner":
        monkeypatch.setenv(executor.SETTING, "0")


def run(rb_path: Path, data: Path, params: dict | None = None, **kwargs):
    seen: list[tuple[str, dict]] = []
    result = run_runbook(load_runbook(rb_path), params or {}, data,
                         on_event=lambda e: seen.append((str(e.kind), dict(e.data))), **kwargs)
    return result, seen


def sleeping(seconds: float) -> list[int]:
    """Processes running ``sleep SECONDS`` (an odd value, unique to one test)."""
    needle = f"sleep\0{seconds}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == needle:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def until(check, timeout: float) -> bool:
    """Whether ``check`` came true within ``timeout`` (the caller asserts, saying what)."""
    try:
        eventually(check, timeout, "", every=0.02)
    except AssertionError:
        return False
    return True


# -- the same run, both ways -------------------------------------------------------------
def layout(data: Path) -> list[str]:
    """The files of a run, job events by their counter and kind instead of their uuid."""
    out = []
    for path in sorted(data.rglob("*")):
        rel = path.relative_to(data).as_posix()
        if path.parent.name == "job_events":
            event = json.loads(path.read_text())
            rel = f"{path.parent.relative_to(data).as_posix()}/{event['counter']}-{event['event']}"
        out.append(rel)
    return sorted(out)


def job_events(data: Path) -> list[tuple]:
    """Each job event as ansible-runner wrote it, less what differs between any two runs
    (times, uuids, pids) and the pty's line endings."""
    events = [json.loads(p.read_text()) for p in (data / "artifacts/run/job_events").iterdir()]
    return [(e["counter"], e["event"], e.get("event_data", {}).get("task"),
             untimed(e.get("stdout") or ""), e["start_line"], e["end_line"],
             sorted(e), sorted(e.get("event_data", {})))
            for e in sorted(events, key=lambda e: e["counter"])]


def untimed(text: str) -> str:
    return re.sub(r'"(delta|end|start)": "[^"]*"', "", text.replace("\r\n", "\n"))


def same_run(seen: list[tuple[str, dict]], data: Path) -> list[tuple[str, dict]]:
    text = str(data)
    return [(kind, json.loads(json.dumps(d).replace(text, "DATA"))) for kind, d in seen]


NOISY = "a dependency deprecated something when Ansible imported it"


@pytest.fixture
def noisy_imports(tmp_path, monkeypatch):
    """A module on the path that warns when Ansible is imported (as cryptography's
    deprecations do), and every Python process told to show every warning."""
    site = tmp_path / "noisy-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import sys, warnings

        class Noisy:
            def find_spec(self, name, path=None, target=None):
                if name == "ansible.cli":
                    warnings.warn({NOISY!r}, UserWarning, stacklevel=2)
                return None

        sys.meta_path.insert(0, Noisy())
    """))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("PYTHONWARNINGS", "always")
    probe = subprocess.run([sys.executable, "-c", "import ansible.cli"], capture_output=True,
                           text=True, timeout=60)
    assert NOISY in probe.stderr  # it does warn, outside a runbook


@pytest.mark.slow
@pytest.mark.parametrize("path", WARM_PATHS)
def test_a_warm_run_leaves_what_ansible_runner_leaves(warm, noisy_imports, tmp_path,
                                                      monkeypatch, path):
    """Even when Ansible's imports warn: neither path records a warning as output."""
    take(path, monkeypatch)
    rb = playbook(tmp_path, [
        {"name": "say it", "ansible.builtin.command": {"argv": ["echo", "{{ word }}"]}},
        {"name": "skip me", "ansible.builtin.command": {"argv": ["false"]}, "when": False},
        {"name": "tell", "ansible.builtin.debug": {"msg": "word is {{ word }}"}},
        {"name": "fail softly", "ansible.builtin.command": {"argv": ["sh", "-c", "exit 4"]},
         "ignore_errors": True}])
    hot, hot_seen = run(rb, tmp_path / "warm", {"word": "hello"})
    monkeypatch.setenv(executor.SETTING, "0")
    cold, cold_seen = run(rb, tmp_path / "cold", {"word": "hello"})

    assert (hot.executor, cold.executor) == (path, "ansible-runner")
    assert (hot.status, hot.rc, hot.tasks) == (cold.status, cold.rc, cold.tasks) == \
        ("successful", 0, {"ok": 2, "failed": 1, "skipped": 1, "unreachable": 0})
    assert same_run(hot_seen, tmp_path / "warm") == same_run(cold_seen, tmp_path / "cold")
    assert layout(tmp_path / "warm") == layout(tmp_path / "cold")
    assert job_events(tmp_path / "warm") == job_events(tmp_path / "cold")
    for name in ("status", "rc", "stderr"):
        assert (hot.artifacts / name).read_text() == (cold.artifacts / name).read_text()
    for result in (hot, cold):
        assert NOISY not in (result.artifacts / "stdout").read_text()
    assert untimed((hot.artifacts / "stdout").read_text()) == \
        untimed((cold.artifacts / "stdout").read_text())
    for name in ("env/extravars", "env/envvars", "inventory/hosts.json"):
        assert (tmp_path / "warm" / name).read_text() == \
            (tmp_path / "cold" / name).read_text().replace(str(tmp_path / "cold"),
                                                           str(tmp_path / "warm"))
    hot_cmd, cold_cmd = (json.loads((r.artifacts / "command").read_text()) for r in (hot, cold))
    assert json.dumps(hot_cmd["command"]) == json.dumps(cold_cmd["command"]).replace(
        str(tmp_path / "cold"), str(tmp_path / "warm"))
    assert sorted(hot_cmd["env"]) == sorted(set(cold_cmd["env"]) - {executor.SETTING})


@pytest.mark.parametrize("path", WARM_PATHS)
def test_a_failing_task_fails_the_run_with_its_rc(warm, tmp_path, monkeypatch, path):
    take(path, monkeypatch)
    rb = playbook(tmp_path, [
        {"name": "break", "ansible.builtin.command": {"argv": ["sh", "-c", "echo no >&2; exit 3"]}},
        {"name": "never", "ansible.builtin.command": {"argv": ["true"]}}])
    result, seen = run(rb, tmp_path / "data")
    assert result.executor == path
    assert (result.status, result.rc) == ("failed", 2)  # ansible-playbook's rc: a task failed
    assert (result.artifacts / "status").read_text() == "failed"
    assert (result.artifacts / "rc").read_text() == "2"
    failed = [d for k, d in seen if k == "runbook.task" and d["status"] == "failed"]
    assert failed[0]["rc"] == 3 and "no" in failed[0]["stderr"]
    assert seen[-1][0] == "runbook.finished" and seen[-1][1]["status"] == "failed"
    assert "never" not in [d["task"] for k, d in seen if k == "runbook.task"]


@pytest.mark.parametrize("path", WARM_PATHS)
def test_a_playbook_ansible_refuses_fails_like_ansible_playbook(warm, tmp_path, monkeypatch,
                                                                path):
    take(path, monkeypatch)
    rb = playbook(tmp_path, [{"name": "bad", "ansible.builtin.no_such_module": {}}])
    result, _ = run(rb, tmp_path / "data")
    assert result.executor == path
    assert result.status == "failed" and result.rc not in (0, None, 250)
    assert "no_such_module" in (result.artifacts / "stdout").read_text()


@pytest.mark.parametrize("path", WARM_PATHS)
def test_check_mode_changes_nothing(warm, tmp_path, monkeypatch, path):
    take(path, monkeypatch)
    target = tmp_path / "made"
    rb = playbook(tmp_path, [{"name": "touch", "ansible.builtin.command": {
        "argv": ["touch", str(target)], "creates": str(target)}}])
    result, _ = run(rb, tmp_path / "data", check=True)
    assert result.ok and result.executor == path and not target.exists()


# -- cancelling --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("path", [*WARM_PATHS, "ansible-runner"])
def test_cancel_stops_a_running_playbook_at_once(warm, tmp_path, monkeypatch, path):
    """Every path: the run ends canceled at once, and nothing of its tree (the task's
    command in its worker's own session, or under Mitogen's multiplexer) is alive a
    second after the cancel."""
    take(path, monkeypatch)
    seconds = 30 + random.randint(1, 99999) / 100000
    rb = playbook(tmp_path, [
        {"name": "wait", "ansible.builtin.command": {"argv": ["sleep", str(seconds)]}},
        {"name": "never", "ansible.builtin.command": {"argv": ["true"]}}])
    cancel, asked, gone = threading.Event(), [], []

    def on_event(entry):
        if entry.data.get("task") == "wait" and entry.data.get("status") == "started":
            def later():
                until(lambda: sleeping(seconds), 10)
                asked.append(time.monotonic())
                cancel.set()
                if until(lambda: not sleeping(seconds), 10):
                    gone.append(time.monotonic())
            threading.Thread(target=later, daemon=True).start()

    seen = []
    result = run_runbook(load_runbook(rb), {}, tmp_path / "data", cancel=cancel,
                         on_event=lambda e: (seen.append((e.kind, e.data)), on_event(e)))
    took = time.monotonic() - asked[0]
    assert took < 2.0, took
    assert until(lambda: bool(gone), 10), "the task's command outlived the cancel"
    assert gone[0] - asked[0] < 1.0, gone[0] - asked[0]
    assert (result.status, result.rc, result.executor) == ("canceled", 254, path)
    assert (result.artifacts / "status").read_text() == "canceled"
    assert seen[-1][1]["status"] == "canceled"
    assert "never" not in [d.get("task") for _, d in seen]


@pytest.mark.slow
def test_cancel_stops_a_fast_task_that_started_no_command(warm, tmp_path):
    """On the fast path a task runs in a process under Mitogen's multiplexer, outside
    the run's tree: a cancel kills it too, even when it runs no command of its own."""
    rb = playbook(tmp_path, [{"name": "wait", "ansible.builtin.wait_for": {
        "path": str(tmp_path / "never"), "timeout": 300}}])
    zygote = warm._proc.pid
    before = zygote_tree(zygote)
    cancel, grew = threading.Event(), []

    def on_event(entry):
        if entry.data.get("task") == "wait" and entry.data.get("status") == "started":
            def later():
                if until(lambda: zygote_tree(zygote) - before - run_tree(zygote), 10):
                    grew.extend(zygote_tree(zygote) - before - run_tree(zygote))
                cancel.set()
            threading.Thread(target=later, daemon=True).start()

    started = time.monotonic()
    result = run_runbook(load_runbook(rb), {}, tmp_path / "data", cancel=cancel,
                         on_event=on_event)
    assert time.monotonic() - started < 10
    assert (result.status, result.executor) == ("canceled", "mitogen")
    assert grew, "the task never ran under the multiplexer"
    assert until(lambda: not (zygote_tree(zygote) & set(grew)), 2), \
        "the task's process outlived the cancel"


def zygote_tree(zygote: int) -> set[int]:
    from gameday.runbooks.trees import descendants as _descendants

    return _descendants(zygote)


def run_tree(zygote: int) -> set[int]:
    """The runs' own processes: the zygote's children that lead a process group of
    their own (Mitogen's multiplexer does not), and everything below them."""
    from gameday.runbooks.trees import descendants as _descendants

    found: set[int] = set()
    for pid in _descendants(zygote):
        if _parent(pid) == zygote and os.getpgid(pid) == pid:
            found |= {pid} | _descendants(pid)
    return found


@pytest.mark.parametrize("path", WARM_PATHS)
def test_a_run_starts_in_the_child_forked_ahead_of_it(warm, tmp_path, monkeypatch, path):
    """The zygote keeps one child forked and set up before any run asks: the next run
    is that child (its task's worker is below it), and another takes its place."""
    from gameday.runbooks.trees import descendants as _descendants

    take(path, monkeypatch)
    zygote = warm._proc.pid
    seen: list[list[int]] = []
    assert until(lambda: seen.append(waiting_children(zygote)) or len(seen[-1]) == 1, 5), seen
    spare = seen[-1][0]
    release = tmp_path / "release"
    rb = playbook(tmp_path, [{"name": "wait", "ansible.builtin.wait_for": {
        "path": str(release), "timeout": 30}}])
    below: list[int] = []

    def watch() -> None:  # the task waits until the run is seen below the spare
        until(lambda: below.extend(_descendants(spare)) or bool(below), 20)
        release.touch()

    threading.Thread(target=watch, daemon=True).start()
    result, _ = run(rb, tmp_path / "data")
    assert result.ok and result.executor == path
    assert below, "the run did not start in the spare child"
    assert until(lambda: waiting_children(zygote) not in ([], [spare]), 5), \
        "no new spare took its place"


def waiting_children(zygote: int) -> list[int]:
    """The zygote's children that lead a process group of their own and have nothing
    below them: a spare waiting for its run."""
    from gameday.runbooks.trees import descendants as _descendants

    return sorted(pid for pid in _descendants(zygote) if _parent(pid) == zygote
                  and os.getpgid(pid) == pid and not _descendants(pid))


@pytest.mark.slow
def test_a_fast_path_that_broke_falls_back_saying_why(tmp_path, monkeypatch, caplog):
    """Mitogen's multiplexer dies under a running executor: the next runs go Ansible's
    own way in the same warm executor, and a warning says why, once."""
    own = executor.WarmExecutor()
    monkeypatch.setattr(executor, "_default", own)
    monkeypatch.delenv(executor.SETTING, raising=False)
    monkeypatch.delenv(fastpath.SETTING, raising=False)
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    own.start()
    try:
        first, _ = run(rb, tmp_path / "one")
        zygote = own._proc.pid
        # between runs, the zygote's only child in its own process group (the spare
        # child waiting for the next run leads a group of its own)
        muxes = [p for p in zygote_tree(zygote) if _parent(p) == zygote
                 and os.getpgid(p) != p]
        assert len(muxes) == 1, muxes
        os.kill(muxes[0], signal.SIGKILL)
        assert until(lambda: _parent(muxes[0]) is None, 10), "the multiplexer lived on"
        with caplog.at_level(logging.INFO, logger="gameday"):
            second, _ = run(rb, tmp_path / "two")
            third, _ = run(rb, tmp_path / "three")
    finally:
        own.stop()
    # The run right after the kill may still be handed to Mitogen (the zygote can see
    # the multiplexer alive as it forks that run); from then on runs go Ansible's way.
    assert first.executor == "mitogen" and third.executor == "warm" and third.ok
    assert second.executor == "warm" or not second.ok
    said = [r.getMessage() for r in caplog.records if "fast path stopped" in r.getMessage()]
    assert len(said) == 1 and "multiplexer" in said[0] and "exited" in said[0]


def test_a_run_the_fast_path_cannot_take_runs_warm_saying_why(warm, tmp_path, caplog):
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    plays = yaml.safe_load(rb.read_text())
    plays[0]["strategy"] = "linear"
    rb.write_text(yaml.safe_dump(plays))
    with caplog.at_level(logging.INFO, logger="gameday"):
        result, _ = run(rb, tmp_path / "data")
    assert result.ok and result.executor == "warm"
    assert any("without the fast path" in r.getMessage() and "own strategy (linear)"
               in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", WARM_PATHS)
def test_a_run_sees_its_own_environment_and_directory(warm, tmp_path, monkeypatch, path):
    """What a command sees (the run's environment, its working directory) is what
    ``ansible-playbook`` would give it."""
    rb = playbook(tmp_path, [{"name": "look", "ansible.builtin.command": {"argv": [
        "sh", "-c", 'echo "${GAMEDAY_PROBE:-unset} $(pwd)"']}}])
    outputs = {}
    for how in (path, "ansible-runner"):
        take(how, monkeypatch)
        result, seen = run(rb, tmp_path / how, env={"GAMEDAY_PROBE": "mine"})
        assert result.ok and result.executor == how
        outputs[how] = [d["stdout"].replace(str(tmp_path / how), "DATA") for k, d in seen
                        if k == "runbook.task" and d["status"] == "ok"]
    assert outputs[path] == outputs["ansible-runner"]
    assert outputs[path][0].startswith("mine ")


def test_a_playbook_with_module_utils_of_its_own_is_not_fast(tmp_path):
    book = tmp_path / "book.yml"
    book.write_text(yaml.safe_dump([{"name": "p", "hosts": "localhost", "tasks": []}]))
    assert fastpath.why_not(book, {}, executor.TEAM_INVENTORY) is None
    (tmp_path / "module_utils").mkdir()
    assert "module utilities" in fastpath.why_not(book, {}, executor.TEAM_INVENTORY)


@pytest.mark.parametrize(("play", "env", "why"), [
    ({"tasks": [{"name": "t", "ansible.builtin.command": "true"}]}, {}, None),
    ({"connection": "local", "tasks": [{"block": [
        {"name": "t", "delegate_to": "localhost", "ansible.builtin.command": "true"}]}]},
     {}, None),
    ({"tasks": []}, {executor.TEAM_INVENTORY: "/inv.yml"}, "the target's own inventory"),
    ({"strategy": "free", "tasks": []}, {}, "own strategy (free)"),
    ({"connection": "ssh", "tasks": []}, {}, "the ssh connection"),
    ({"vars": {"ansible_connection": "docker"}, "tasks": []}, {}, "ansible_connection"),
    ({"roles": ["web"]}, {}, "uses roles"),
    ({"tasks": [{"block": [{"name": "deep", "ansible.builtin.include_tasks": "x.yml"}]}]},
     {}, "'deep' uses ansible.builtin.include_tasks"),
    ({"tasks": [{"name": "legacy", "ansible.legacy.include_tasks": "x.yml"}]},
     {}, "'legacy' uses ansible.legacy.include_tasks"),
    ({"handlers": [{"name": "away", "delegate_to": "db1", "ansible.builtin.command": "x"}]},
     {}, "'away' is delegated to db1"),
])
def test_which_runs_the_fast_path_takes(tmp_path, play, env, why):
    book = tmp_path / "book.yml"
    book.write_text(yaml.safe_dump([{"name": "p", "hosts": "localhost", **play}]))
    said = fastpath.why_not(book, env, executor.TEAM_INVENTORY)
    assert (said is None) if why is None else (said is not None and why in said), said


def test_a_playbook_changed_in_place_is_read_again(tmp_path):
    """What keeps a playbook off the fast path is read once per version of the file,
    and a change shows however it was made: the same size, its old modification time
    put back, or a file that could not be read before (never kept)."""
    book = tmp_path / "book.yml"
    fast = "- {name: p, hosts: localhost, strategy: linear}\n"
    slow = "- {name: p, hosts: localhost, strategy: free__}\n"
    broken = "- {name: p, hosts: localhost, strategy: [linear\n"
    assert len(fast) == len(slow) == len(broken)
    book.write_text(broken)
    stamp = book.stat().st_mtime_ns
    assert "could not be read" in fastpath.why_not(book, {}, executor.TEAM_INVENTORY)
    for text, why in ((slow, "free__"), (fast, "linear"), (slow, "free__")):
        book.write_text(text)
        os.utime(book, ns=(stamp, stamp))  # as `cp -p` or `touch -r` would leave it
        assert why in fastpath.why_not(book, {}, executor.TEAM_INVENTORY)


@pytest.mark.slow
def test_an_interrupt_stops_the_playbook_before_it_propagates(warm, tmp_path):
    seconds = 30 + random.randint(1, 99999) / 100000
    rb = playbook(tmp_path, [{"name": "wait", "ansible.builtin.command": {
        "argv": ["sleep", str(seconds)]}}])

    def tick():
        if sleeping(seconds):
            raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_runbook(load_runbook(rb), {}, tmp_path / "data", tick=tick)
    assert time.monotonic() - started < 10
    assert (tmp_path / "data/artifacts/run/status").read_text() == "canceled"
    assert until(lambda: not sleeping(seconds), 2)


def test_an_interrupt_while_a_warm_run_starts_is_not_swallowed(warm, tmp_path, monkeypatch):
    from chaoslib.exceptions import InterruptExecution

    def interrupted(self, *args, **kwargs):
        raise InterruptExecution("SIGTERM signal received")

    monkeypatch.setattr(executor.WarmExecutor, "_spawn", interrupted)
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    seen = []
    with pytest.raises(InterruptExecution):
        run_runbook(load_runbook(rb), {}, tmp_path / "data",
                    on_event=lambda e: seen.append(e.kind))
    assert seen == ["runbook.started"]


# -- isolation ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("path", WARM_PATHS)
def test_runs_at_once_from_threads_see_only_their_own(warm, tmp_path, monkeypatch, path):
    """Two runs at the same time (each waits until the other has started), then a
    third: each sees its own extra vars, and no fact one run cached reaches another."""
    take(path, monkeypatch)
    rb = playbook(tmp_path, [
        {"name": "nothing from before", "ansible.builtin.assert": {
            "that": ["mine is not defined"]}},
        {"name": "remember", "ansible.builtin.set_fact": {"mine": "{{ word }}",
                                                          "cacheable": True}},
        {"name": "meet", "ansible.builtin.command": {"argv": [
            "sh", "-c", 'touch "$1"; for i in $(seq 200); do [ -e "$2" ] && exit 0; '
                        'sleep 0.05; done; exit 1', "meet", "{{ here }}", "{{ there }}"]}},
        {"name": "say", "ansible.builtin.command": {"argv": ["echo", "{{ mine }}"]}}])
    results: dict[str, tuple] = {}

    def go(word: str, other: str) -> None:
        results[word] = run(rb, tmp_path / word, {
            "word": word, "here": str(tmp_path / f"{word}.here"),
            "there": str(tmp_path / f"{other}.here")})

    threads = [threading.Thread(target=go, args=pair)
               for pair in (("alpha", "beta"), ("beta", "alpha"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    (tmp_path / "gamma.here").touch()
    go("gamma", "gamma")
    for word, (result, seen) in results.items():
        assert result.ok and result.executor == path, (word, seen)
        said = [d["stdout"] for k, d in seen if k == "runbook.task" and d.get("task") == "say"
                and d["status"] == "ok"]
        assert said == [word]
        others = {"alpha", "beta", "gamma"} - {word}
        text = json.dumps(seen) + (result.artifacts / "stdout").read_text()
        assert not any(f'"{o}"' in text or f" {o}\n" in text for o in others), word
        assert json.loads((tmp_path / word / "env/extravars").read_text())["word"] == word


# -- falling back --------------------------------------------------------------------------
class Broken(executor.WarmExecutor):
    def command(self, workdir, warm_up):
        return [sys.executable, "-c",
                "import sys; print('no Ansible here', file=sys.stderr); sys.exit(3)"]


def test_a_zygote_that_cannot_start_falls_back_saying_why(tmp_path, monkeypatch, caplog):
    broken = Broken()
    broken.start()  # as gameday serve does (prewarm)
    monkeypatch.setattr(executor, "_default", broken)
    monkeypatch.delenv(executor.SETTING, raising=False)
    rb = playbook(tmp_path, [
        {"name": "say it", "ansible.builtin.command": {"argv": ["echo", "hi"]}}])
    try:
        with caplog.at_level(logging.INFO, logger="gameday"):
            first, seen = run(rb, tmp_path / "one")
            second, _ = run(rb, tmp_path / "two")
    finally:
        broken.stop()
    assert first.ok and first.executor == "ansible-runner"
    assert second.ok and second.executor == "ansible-runner"
    assert [d["stdout"] for k, d in seen if k == "runbook.task" and d["status"] == "ok"] == \
        ["hi"]
    said = [r for r in caplog.records if "runs through ansible-runner" in r.getMessage()]
    assert len(said) == 2 and all(r.levelno == logging.WARNING for r in said)
    assert "could not start" in said[0].getMessage()
    assert "no Ansible here" in said[0].getMessage()


def test_a_zygote_with_no_interpreter_falls_back(tmp_path, monkeypatch, caplog):
    missing = executor.WarmExecutor(python=str(tmp_path / "no-such-python"))
    missing.start()
    monkeypatch.setattr(executor, "_default", missing)
    monkeypatch.delenv(executor.SETTING, raising=False)
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    with caplog.at_level(logging.INFO, logger="gameday"):
        result, _ = run(rb, tmp_path / "data")
    missing.stop()
    assert result.ok and result.executor == "ansible-runner"
    assert any("could not start" in r.getMessage() and "no-such-python" in r.getMessage()
               for r in caplog.records)


def test_a_process_that_did_not_prewarm_starts_it_at_its_second_runbook(
        tmp_path, monkeypatch, caplog):
    """Starting the executor for one run costs more than it saves (a one-shot
    ``gameday runbook run`` starts none): the first two runs go through
    ansible-runner, the executor starts after the second, and the next runs are warm."""
    own = executor.WarmExecutor()
    monkeypatch.setattr(executor, "_default", own)
    monkeypatch.delenv(executor.SETTING, raising=False)
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    try:
        with caplog.at_level(logging.INFO, logger="gameday"):
            first, _ = run(rb, tmp_path / "one")
            assert not own.started
            second, _ = run(rb, tmp_path / "two")
            assert own.started
        third, _ = run(rb, tmp_path / "three")
    finally:
        own.stop()
    assert (first.executor, second.executor, third.executor) == \
        ("ansible-runner", "ansible-runner", "mitogen")
    said = [r for r in caplog.records if "runs through ansible-runner" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.INFO, logging.INFO]
    assert "not started in this process" in said[0].getMessage()
    assert "starts after this run" in said[1].getMessage()


def test_the_warm_executor_can_be_turned_off(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(executor.SETTING, "0")
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    with caplog.at_level(logging.INFO, logger="gameday"):
        result, _ = run(rb, tmp_path / "data")
    assert result.ok and result.executor == "ansible-runner"
    assert any(f"turned off ({executor.SETTING}=0)" in r.getMessage()
               for r in caplog.records)


def test_other_ansible_settings_fall_back_rather_than_run_with_the_wrong_ones(
        warm, tmp_path, caplog):
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    with caplog.at_level(logging.INFO, logger="gameday"):
        result, _ = run(rb, tmp_path / "data", env={"ANSIBLE_FORKS": "3"})
    assert result.ok and result.executor == "ansible-runner"
    assert any("ANSIBLE_FORKS" in r.getMessage() for r in caplog.records)


# -- the zygote's lifetime ---------------------------------------------------------------
@pytest.mark.slow
def test_a_zygote_that_dies_is_replaced(tmp_path, monkeypatch):
    own = executor.WarmExecutor()
    monkeypatch.setattr(executor, "_default", own)
    monkeypatch.delenv(executor.SETTING, raising=False)
    rb = playbook(tmp_path, [{"name": "x", "ansible.builtin.command": {"argv": ["true"]}}])
    own.start()
    try:
        first, _ = run(rb, tmp_path / "one")
        assert own._proc is not None
        os.kill(own._proc.pid, signal.SIGKILL)
        own._proc.wait(10)
        second, _ = run(rb, tmp_path / "two")
    finally:
        own.stop()
    assert first.executor == second.executor == "mitogen" and second.ok


@pytest.mark.slow
def test_a_zygote_stopped_while_it_warms_up_leaves_nothing_behind():
    """Stopped before it is ready (``gameday serve`` stopped as it starts, a command that
    ends first), the zygote is killed with what it started meanwhile: Mitogen's
    multiplexer and its interpreters. The multiplexer can hang as it shuts down (its
    threads wait for one another): here it is stopped (SIGSTOP), so that only a kill
    ends it."""
    own = executor.WarmExecutor()
    own.start()
    assert own._proc is not None
    zygote = own._proc.pid
    try:
        assert until(lambda: len(_group(zygote)) >= 2, 60), "the warm-up started no multiplexer"
        for pid in _group(zygote):
            if pid != zygote:
                os.kill(pid, signal.SIGSTOP)
        assert not own._ready
    finally:
        own.stop()
    assert until(lambda: not _group(zygote), 5), f"left behind: {_group(zygote)}"


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_nothing_outlives_the_process_that_ran_it(tmp_path):
    """The gameday process is killed mid-run: the zygote sees its lifeline close and
    kills the run's process group, then exits."""
    seconds = 30 + random.randint(1, 99999) / 100000
    rb = playbook(tmp_path, [{"name": "wait", "ansible.builtin.command": {
        "argv": ["sleep", str(seconds)]}}])
    script = textwrap.dedent(f"""
        from pathlib import Path
        from gameday.runbooks.runbook import load_runbook, prewarm, run_runbook
        prewarm()
        run_runbook(load_runbook(Path({str(rb)!r})), {{}}, Path({str(tmp_path / 'data')!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        assert until(lambda: sleeping(seconds), 60), "the playbook never started"
        zygotes = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                   and _parent(int(p.name)) == proc.pid]
        assert zygotes, "the run did not go through the warm executor"
        proc.kill()
        proc.wait(10)
        assert until(lambda: not sleeping(seconds), 5), "the run outlived its process"
        assert until(lambda: not any(_parent(z) is not None for z in zygotes), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[1])
