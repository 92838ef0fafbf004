"""Alert to first containment task: gameday serve vs Event-Driven Ansible, one run.

Both tools run the same playbook, whose first task writes the wall-clock time it ran
(and whose last task marks the run done). Two measurements, each over --trials:

  (a) webhook POST (an Alertmanager-shaped payload) -> first task running
  (b) scrape target killed -> Prometheus -> Alertmanager -> tool -> first task running

ansible-rulebook (with its built-in eda.builtin.webhook source) is installed into
bench/.venv-eda on first use. Prints each tool's median and p90 and the ratio.

    .venv/bin/python bench/runbook_latency.py [--trials 10] [--only a|b]
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

from gameday.sandbox.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent
EDA_VENV = ROOT / "bench" / ".venv-eda"
TOKEN = "bench-token-0123456789abcdef"


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


def start_gameday(work: Path, fx: dict, env: dict) -> Tool:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gameday", "serve", "--port", str(port), "--data-dir",
         str(work / "gameday-data")], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "GAMEDAY_TOKEN": TOKEN, "GAMEDAY_RUNBOOKS": str(fx["books"]),
             "GAMEDAY_DB": str(work / "gameday.db")})
    tool = Tool("gameday serve", f"http://127.0.0.1:{port}/api/v1/alerts", proc)
    until(lambda: healthy(f"http://127.0.0.1:{port}/healthz"), 30, "gameday serve")
    return tool


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


def trial(fx: dict, trigger) -> float:
    for f in (fx["marker"], fx["done"]):
        f.unlink(missing_ok=True)
    t0 = time.time()
    trigger()
    until(lambda: fx["marker"].exists() and fx["marker"].read_text(), 60, "first task")
    ran = float(fx["marker"].read_text())
    until(fx["done"].exists, 60, "playbook end")
    return ran - t0


def webhook_trials(tool: Tool, fx: dict, trials: int) -> list[float]:
    def post(i: int):
        request = urllib.request.Request(tool.url, data=payload(i), headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()

    trial(fx, lambda: post(99))  # warm-up, not counted
    return [trial(fx, lambda i=i: post(i)) for i in range(trials)]


def chain_trials(tool: Tool, fx: dict, trials: int, work: Path) -> list[float]:
    from gameday.alerting import start_alerting
    from gameday.sandbox import start_sandbox, stop_sandbox

    sandbox_dir = work / f"sandbox-{tool.name.split()[0]}"
    shop = start_sandbox(sandbox_dir)
    stack = start_alerting(work / f"alerting-{tool.name.split()[0]}", shop.state(),
                           webhook_url=tool.url, token=TOKEN, gameday_url="http://127.0.0.1",
                           rules_dirs=[fx["rules"]])
    results = []
    try:
        until(lambda: stack.targets_up() == 7, 60, "targets up")
        for _ in range(trials):
            results.append(trial(fx, lambda: shop.operate(
                "signal", service="checkout", replica=2, signal="KILL")))
            shop.operate("restart", service="checkout", only_failed=True)
            until(lambda: stack.targets_up() == 7 and not firing(stack), 60, "recovery")
    finally:
        stack.stop()
        stop_sandbox(sandbox_dir)
    return results


def firing(stack) -> bool:
    return bool(stack.query("/api/v1/alerts")["data"]["alerts"])


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return statistics.median(ordered), p90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--only", choices=["a", "b"])
    args = parser.parse_args()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory(prefix="gameday-bench-") as tmp:
        work = Path(tmp)
        fx = write_fixtures(work)
        results: dict[str, dict[str, list[float]]] = {}
        for start in (start_gameday, start_eda):
            tool = start(work, fx, env)
            try:
                if args.only in (None, "a"):
                    results.setdefault("a", {})[tool.name] = webhook_trials(tool, fx,
                                                                            args.trials)
                if args.only in (None, "b"):
                    results.setdefault("b", {})[tool.name] = chain_trials(tool, fx,
                                                                          args.trials, work)
            finally:
                tool.stop()
    titles = {"a": "(a) webhook POST -> first runbook task",
              "b": "(b) scrape target killed -> first containment task"}
    for key, by_tool in results.items():
        print(f"\n{titles[key]}  ({args.trials} trials each)")
        stats = {name: summary(values) for name, values in by_tool.items()}
        for name, (median, p90) in stats.items():
            print(f"  {name:18} median {median * 1000:7.0f} ms   p90 {p90 * 1000:7.0f} ms")
        g, e = stats["gameday serve"], stats["ansible-rulebook"]
        print(f"  ratio ansible-rulebook / gameday: median {e[0] / g[0]:.2f}x, "
              f"p90 {e[1] / g[1]:.2f}x")


if __name__ == "__main__":
    main()
