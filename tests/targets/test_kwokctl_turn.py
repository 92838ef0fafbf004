"""kwok clusters made at the same time on one machine: kwokctl picks its components'
ports by trying them, so two creates take turns (``cluster.kwokctl_turn``), or the
second cluster's API server stores its objects in the first one's etcd."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from controlplane import needs_build

from gameday.core.errors import GamedayError
from gameday.targets import cluster as k8s

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\n"
        "from gameday.targets import cluster\n"
        "with cluster.kwokctl_turn():\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[1]))\n")


def test_a_turn_waits_for_the_one_before_and_says_so_when_it_never_ends():
    with subprocess.Popen([sys.executable, "-c", HOLD, "30"], stdout=subprocess.PIPE,
                          text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with pytest.raises(GamedayError, match=r"another kwokctl create or delete"), \
                    k8s.kwokctl_turn(wait_s=0.3):
                pass
            holder.kill()  # a holder that dies lets its turn go with it
            holder.wait(timeout=10)
            with k8s.kwokctl_turn(wait_s=5):
                pass
        finally:
            holder.kill()


def _ports(home: Path, name: str) -> set[int]:
    docs = yaml.safe_load_all((home / ".kwok" / "clusters" / name / "kwok.yaml").read_text())
    options = next(d for d in docs if d and d.get("kind") == "KwokctlConfiguration")["options"]
    return {value for key, value in options.items()
            if key.endswith("Port") and type(value) is int and value}


@pytest.mark.slow
@needs_build
def test_two_kwok_clusters_made_at_once_have_ports_and_objects_of_their_own(tmp_path):
    # Each in a home of its own, as a second user or another test process would be:
    # neither can see the ports the other's ~/.kwok records, only those that answer.
    made = {f"gameday-atonce-{os.getpid()}-{n}": n for n in (1, 2)}
    homes = {name: tmp_path / f"home{n}" for name, n in made.items()}
    up = "from gameday.targets import cluster; cluster.up('kwok', nodes={})"
    procs = {name: subprocess.Popen(
        [sys.executable, "-c", up.format(n)], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(homes[name]), "GAMEDAY_CLUSTER": name})
        for name, n in made.items()}
    try:
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=400)
            assert proc.returncode == 0, f"{name}: {out[-2000:]}"
        first, second = (_ports(homes[name], name) for name in made)
        assert first and second and not first & second, (first, second)
        for name, n in made.items():
            kubeconfig = homes[name] / ".kwok" / "clusters" / name / "kubeconfig.yaml"
            nodes = subprocess.run([str(k8s.k8s_bin() / "kubectl"), "--kubeconfig",
                                    str(kubeconfig), "get", "nodes", "-o", "name"],
                                   capture_output=True, text=True, timeout=60, check=True)
            assert len(nodes.stdout.split()) == n, (name, nodes.stdout)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        for name in made:
            subprocess.run([sys.executable, "-c",
                            "from gameday.targets import cluster; cluster.down('kwok')"],
                           cwd=ROOT, capture_output=True, timeout=180,
                           env={**os.environ, "HOME": str(homes[name]),
                                "GAMEDAY_CLUSTER": name})
