"""Alert to first containment task: gameday serve vs Event-Driven Ansible, one run.

Both tools run the same playbook, whose first task writes the wall-clock time it ran
(and whose last task marks the run done). Two measurements, each over --trials:

  (a) webhook POST (an Alertmanager-shaped payload) -> first task running
  (b) scrape target killed -> Prometheus -> Alertmanager -> tool -> first task running

ansible-rulebook (with its built-in eda.builtin.webhook source) is installed into
bench/.venv-eda on first use. Prints each tool's median and p90 and the ratio, and for
(a) two floors:

  - Ansible's floor: a bare process that imported Ansible, ran the playbook once, and
    forks for each trial to run it again with Ansible's own PlaybookCLI and its linear
    strategy (no webhook, no records, no artifacts): fork -> first task running;
  - the exec floor: fork and exec the first task's command, no Ansible at all (the
    command is a Python one-liner, so this is mostly Python starting up).

--fallback adds gameday serve without its fast path (GAMEDAY_MITOGEN=0: the warm
executor with Ansible's own strategy) and with its warm executor turned off
(GAMEDAY_WARM_EXECUTOR=0: ansible-runner starts ansible-playbook afresh for every run).

A trial whose first task never runs is reported as timed out, with what the tool said,
and counted; the others still give figures. Between trials each tool is given until its
run has ended (gameday: its run's record says so; ansible-rulebook: no ansible-playbook
left under it), so that no trial's alert lands while the previous run is still going.

    .venv/bin/python bench/runbook_latency.py [--trials 10] [--only a|b] [--fallback]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from gameday.targets.sandbox.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent
EDA_VENV = ROOT / "bench" / ".venv-eda"
TOKEN = "bench-token-0123456789abcdef"
FLOOR = "warm fork (floor)"
EXEC_FLOOR = "exec (no Ansible)"
TIMEOUT_S = 60.0
TERMINAL = {"successful", "failed", "canceled", "error", "timeout", "refused"}


def until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(what)


def ensure_eda() -> Path:
    binary = EDA_VENV / "bin" / "ansible-rulebook"
    if not binary.exists():
        print("installing ansible-rulebook into bench/.venv-eda ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(EDA_VENV)], check=True)
        subprocess.run([str(EDA_VENV / "bin" / "pip"), "install", "-q", "ansible-rulebook",
                        "ansible-core"], check=True)
    return binary


def write_fixtures(work: Path) -> dict[str, Path]:
    marker, done = work / "first-task", work / "done"
    play = {"name": "bench containment", "hosts": "localhost", "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}",
                     "gameday_runbook": {
                         "summary": "Benchmark: record when the first task runs.",
                         "alerts": ["BenchAlert", "ServiceReplicaDown"], "auto": True,
                         "parameters": {"marker": {"type": "string", "default": str(marker),
                                                   "pattern": "^/[A-Za-z0-9_./-]+$"}}}},
            "tasks": [
                {"name": "first containment task", "ansible.builtin.command": {"argv": [
                    "{{ ansible_playbook_python }}", "-c",
                    "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))",
                    "{{ marker }}"]}},
                {"name": "mark done", "ansible.builtin.command": {"argv": [
                    "touch", str(done)]}}]}
    books = work / "runbooks"
    books.mkdir()
    (books / "bench-containment.yml").write_text(yaml.safe_dump([play]))
    port = free_port()
    rulebook = work / "rulebook.yml"
    rulebook.write_text(yaml.safe_dump([{
        "name": "bench", "hosts": "all",
        "sources": [{"eda.builtin.webhook": {"host": "127.0.0.1", "port": port,
                                             "token": TOKEN}}],
        "rules": [{"name": "contain", "condition": "event.payload.status == \"firing\"",
                   "action": {"run_playbook": {
                       "name": str(books / "bench-containment.yml"),
                       "extra_vars": {"marker": str(marker)}}}}]}]))
    (work / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    rules = work / "rules"
    rules.mkdir()
    (rules / "bench.rules.yml").write_text(yaml.safe_dump({"groups": [{
        "name": "bench", "rules": [{"alert": "ServiceReplicaDown",
                                    "expr": 'up{job="gameday-sandbox"} == 0', "for": "0s",
                                    "labels": {"severity": "critical"}}]}]}))
    return {"marker": marker, "done": done, "books": books, "rulebook": rulebook,
            "eda_port": Path(str(port)), "rules": rules, "inventory": work / "inventory.yml"}


class Tool:
    def __init__(self, name: str, url: str, proc: subprocess.Popen):
        self.name, self.url, self.proc = name, url, proc

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_gameday(work: Path, fx: dict, env: dict, warm: bool = True,
                  fast: bool = True) -> Tool:
    port = free_port()
    name = ("gameday serve" if fast else "gameday (linear)") if warm else "gameday (no warm)"
    data = work / name.replace(" ", "-").replace("(", "").replace(")", "")
    proc = subprocess.Popen(
        # --coalesce-window 0: every trial starts a run of its own (alerts with the same
        # parameters would otherwise join the previous trial's successful run)
        [sys.executable, "-m", "gameday", "serve", "--port", str(port), "--data-dir",
         str(data / "runs"), "--coalesce-window", "0"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_RUNBOOKS": str(fx["books"]),
             "GAMEDAY_DB": str(data / "gameday.db"),
             "GAMEDAY_WARM_EXECUTOR": "1" if warm else "0",
             "GAMEDAY_MITOGEN": "1" if fast else "0"})
    tool = Tool(name, f"http://127.0.0.1:{port}/api/v1/alerts", proc)
    until(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), 30, "gameday serve")
    return tool


def start_gameday_cold(work: Path, fx: dict, env: dict) -> Tool:
    return start_gameday(work, fx, env, warm=False)


def start_gameday_linear(work: Path, fx: dict, env: dict) -> Tool:
    return start_gameday(work, fx, env, fast=False)


def start_eda(work: Path, fx: dict, env: dict) -> Tool:
    binary = ensure_eda()
    port = int(str(fx["eda_port"]))
    proc = subprocess.Popen(
        [str(binary), "--rulebook", str(fx["rulebook"]), "-i", str(fx["inventory"])],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**env, "PATH": f"{EDA_VENV / 'bin'}{os.pathsep}{env['PATH']}"})
    tool = Tool("ansible-rulebook", f"http://127.0.0.1:{port}/endpoint", proc)
    until(lambda: listening(port), 60, "ansible-rulebook's webhook")
    return tool


def healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=1).status == 200
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def payload(i: int) -> bytes:
    return json.dumps({
        "version": "4", "groupKey": f"bench-{i}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "bench", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "", "alerts": [{
            "status": "firing", "labels": {"alertname": "BenchAlert"}, "annotations": {},
            "startsAt": f"2026-11-22T10:00:{i:02d}Z", "endsAt": "", "generatorURL": "",
            "fingerprint": f"bench{i}"}]}).encode()


class TimedOut(Exception):
    """A trial's first task did not run within TIMEOUT_S (or its run never ended)."""


def trial(fx: dict, trigger, settle=None) -> float:
    """Seconds from ``trigger()`` to the first task running. ``settle(said)`` then
    waits until the tool's run has ended (``said``: what ``trigger`` returned)."""
    for f in (fx["marker"], fx["done"]):
        f.unlink(missing_ok=True)
    t0 = time.time()
    said = trigger()
    try:
        until(lambda: fx["marker"].exists() and fx["marker"].read_text(), TIMEOUT_S,
              "first task")
    except TimeoutError as exc:
        raise TimedOut(f"no first task within {TIMEOUT_S:.0f} s; the tool said {said!r}") \
            from exc
    ran = float(fx["marker"].read_text())
    try:
        until(fx["done"].exists, TIMEOUT_S, "playbook end")
        if settle is not None:
            settle(said)
    except TimeoutError as exc:
        raise TimedOut(f"the run did not end within {TIMEOUT_S:.0f} s ({exc})") from exc
    return ran - t0


def post(tool: Tool, i: int) -> dict:
    request = urllib.request.Request(tool.url, data=payload(i), headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    body = urllib.request.urlopen(request, timeout=10).read()
    try:
        return json.loads(body) if body else {}
    except ValueError:
        return {"answer": body[:200].decode(errors="replace")}


def settled(tool: Tool):
    """How to wait until a run of ``tool`` has ended."""
    if tool.name.startswith("gameday"):
        api = tool.url.rsplit("/alerts", 1)[0]

        def run_ended(said: dict) -> None:
            for run_id in run_ids(said):
                until(lambda run_id=run_id: run_status(api, run_id) in TERMINAL, TIMEOUT_S,
                      f"run {run_id} ending")
        return run_ended

    def no_playbook_left(said: dict) -> None:
        until(lambda: not playbooks_under(tool.proc.pid), TIMEOUT_S, "ansible-playbook ending")
    return no_playbook_left


def run_ids(said) -> list[int]:
    """The runs an answer of gameday's webhook started or joined."""
    found: list[int] = []
    if isinstance(said, dict):
        if isinstance(said.get("run_id"), int):
            found.append(said["run_id"])
        for value in said.values():
            found.extend(run_ids(value))
    elif isinstance(said, list):
        for value in said:
            found.extend(run_ids(value))
    return sorted(set(found))


def run_status(api: str, run_id: int) -> str:
    request = urllib.request.Request(f"{api}/runs/{run_id}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    return str(json.loads(urllib.request.urlopen(request, timeout=10).read()).get("status"))


def playbooks_under(root: int) -> list[int]:
    """The ``ansible-playbook`` processes below ``root``."""
    from gameday.runbooks.trees import descendants

    found = []
    for pid in descendants(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"ansible-playbook") for a in argv[:2]):
            found.append(pid)
    return found


def warm_up(tool: Tool, fx: dict) -> None:
    """Two runs, not counted, then a pause: a server that has been up a while, as in
    production (gameday serve starts its warm executor when it starts, or else after
    its second run)."""
    for i in (98, 99):
        trial(fx, lambda i=i: post(tool, i), settled(tool))
    time.sleep(5)


def webhook_trials(tool: Tool, fx: dict, trials: int) -> list[float | None]:
    return counted(tool.name, [lambda i=i: trial(fx, lambda: post(tool, i), settled(tool))
                               for i in range(trials)])


def counted(name: str, trials) -> list[float | None]:
    """Each trial's figure, or None for one that timed out (said, and counted)."""
    results: list[float | None] = []
    for one in trials:
        try:
            results.append(one())
        except TimedOut as exc:
            print(f"  {name}: a trial timed out: {exc}", flush=True)
            results.append(None)
    return results


# -- Ansible's floor: a bare warm fork ---------------------------------------------------
def floor_worker(playbook: str, inventory: str, marker: str) -> None:
    """Import Ansible, run the playbook once, then fork and run it again for each line
    on stdin, answering a line when the child has ended. The least a warm process can
    do: no webhook, no records, no artifacts, no event stream."""
    hello = os.fdopen(os.dup(1), "w")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.environ.update({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False",
                       "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
                       "ANSIBLE_RETRY_FILES_ENABLED": "False"})
    from ansible import context
    from ansible.cli.playbook import PlaybookCLI
    from ansible.parsing.vault import VaultSecretsContext
    from ansible.utils.context_objects import CLIArgs, GlobalCLIArgs

    argv = ["ansible-playbook", "-i", inventory, "-e", json.dumps({"marker": marker}),
            playbook]

    def once() -> int:
        context.CLIARGS = CLIArgs({})
        GlobalCLIArgs._Singleton__instance = None
        VaultSecretsContext._current = None
        try:
            PlaybookCLI.cli_executor(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    once()  # the warm-up
    hello.write("ready\n")
    hello.flush()
    for _ in sys.stdin:
        pid = os.fork()
        if pid == 0:
            code = 250
            try:
                code = once()
            finally:
                os._exit(code)
        os.waitpid(pid, 0)
        hello.write("done\n")
        hello.flush()


def floor_trials(fx: dict, trials: int, env: dict) -> list[float]:
    playbook = fx["books"] / "bench-containment.yml"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--floor-worker", str(playbook), str(fx["inventory"]),
         str(fx["marker"])], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the floor worker did not start")

        def fork() -> None:
            proc.stdin.write("go\n")
            proc.stdin.flush()

        def one() -> float:
            try:
                return trial(fx, fork)
            finally:
                proc.stdout.readline()  # its child has ended

        return counted(FLOOR, [one for _ in range(trials + 1)])[1:]  # the first: warm-up
    finally:
        proc.stdin.close()
        proc.wait(30)


def exec_trials(fx: dict, trials: int) -> list[float | None]:
    """Fork and exec the first task's command, as its worker would at the very least:
    no Ansible, no records (the physical floor on this machine)."""
    code = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"

    def run_it() -> None:
        subprocess.run([sys.executable, "-c", code, str(fx["marker"])], check=True)
        fx["done"].touch()

    return counted(EXEC_FLOOR, [lambda: trial(fx, run_it) for _ in range(trials + 1)])[1:]


def chain_trials(tool: Tool, fx: dict, trials: int, work: Path) -> list[float | None]:
    from gameday.targets.sandbox import start_sandbox, stop_sandbox
    from gameday.targets.sandbox.alerting import start_alerting

    sandbox_dir = work / f"sandbox-{tool.name.split()[0]}"
    shop = start_sandbox(sandbox_dir)
    stack = start_alerting(work / f"alerting-{tool.name.split()[0]}", shop.state(),
                           webhook_url=tool.url, token=TOKEN, gameday_url="http://127.0.0.1",
                           rules_dirs=[fx["rules"]])
    results = []
    try:
        until(lambda: stack.targets_up() == 7, 60, "targets up")
        for _ in range(trials):
            results.extend(counted(tool.name, [lambda: trial(fx, lambda: shop.operate(
                "signal", service="checkout", replica=2, signal="KILL"))]))
            shop.operate("restart", service="checkout", only_failed=True)
            until(lambda: stack.targets_up() == 7 and not firing(stack), 60, "recovery")
    finally:
        stack.stop()
        stop_sandbox(sandbox_dir)
    return results


def firing(stack) -> bool:
    return bool(stack.query("/api/v1/alerts")["data"]["alerts"])


def summary(values: list[float | None]) -> tuple[float, float]:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return float("nan"), float("nan")
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return statistics.median(ordered), p90


def main() -> None:
    if sys.argv[1:2] == ["--floor-worker"]:
        floor_worker(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--only", choices=["a", "b"])
    parser.add_argument("--fallback", action="store_true",
                        help="also measure gameday serve without its warm executor")
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}"}
    starts = [start_gameday, start_eda] + (
        [start_gameday_linear, start_gameday_cold] if args.fallback else [])
    with tempfile.TemporaryDirectory(prefix="gameday-bench-") as tmp:
        work = Path(tmp)
        fx = write_fixtures(work)
        results: dict[str, dict[str, list[float]]] = {}
        for start in starts:
            tool = start(work, fx, env)
            try:
                warm_up(tool, fx)
                if args.only in (None, "a"):
                    results.setdefault("a", {})[tool.name] = webhook_trials(tool, fx,
                                                                            args.trials)
                if args.only in (None, "b"):
                    results.setdefault("b", {})[tool.name] = chain_trials(tool, fx,
                                                                          args.trials, work)
            finally:
                tool.stop()
        if args.only in (None, "a"):
            results["a"][FLOOR] = floor_trials(fx, args.trials, env)
            results["a"][EXEC_FLOOR] = exec_trials(fx, args.trials)
    titles = {"a": "(a) webhook POST -> first runbook task",
              "b": "(b) scrape target killed -> first containment task"}
    for key, by_tool in results.items():
        print(f"\n{titles[key]}  ({args.trials} trials each)")
        stats = {name: summary(values) for name, values in by_tool.items()}
        for name, (median, p90) in stats.items():
            lost = sum(v is None for v in by_tool[name])
            print(f"  {name:18} median {median * 1000:7.0f} ms   p90 {p90 * 1000:7.0f} ms"
                  + (f"   timed out {lost} of {len(by_tool[name])}" if lost else ""))
        g, e = stats["gameday serve"], stats["ansible-rulebook"]
        print(f"  ratio ansible-rulebook / gameday: median {e[0] / g[0]:.2f}x, "
              f"p90 {e[1] / g[1]:.2f}x")
        for floor, what in ((FLOOR, "Ansible's floor: a warm fork of ansible-playbook"),
                            (EXEC_FLOOR, "the exec floor: fork and exec the command")):
            if floor in stats:
                f = stats[floor]
                print(f"  gameday above {what}: median {(g[0] - f[0]) * 1000:+.0f} ms, "
                      f"p90 {(g[1] - f[1]) * 1000:+.0f} ms")


if __name__ == "__main__":
    main()
