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
        "from pathlib import Path\n"
        "from gameday.targets import cluster\n"
        "with cluster.kwokctl_turn(path=Path(sys.argv[2])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[1]))\n")


def test_a_turn_waits_for_the_one_before_and_says_so_when_it_never_ends(tmp_path):
    # a lock of the test's own: the machine's is other test processes' too
    lock = tmp_path / "kwokctl.lock"
    with subprocess.Popen([sys.executable, "-c", HOLD, "30", str(lock)],
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with pytest.raises(GamedayError, match=r"another kwokctl create or delete"), \
                    k8s.kwokctl_turn(wait_s=0.3, path=lock):
                pass
            holder.kill()  # a holder that dies lets its turn go with it
            holder.wait(timeout=10)
            with k8s.kwokctl_turn(wait_s=5, path=lock):
                pass
        finally:
            holder.kill()


def test_a_lock_behind_a_link_or_of_another_user_is_refused(tmp_path):
    """Another user who made the lock first (the temporary directory is everyone's)
    would hold every kwok game day here, or point it at a file of theirs."""
    link = tmp_path / "kwokctl.lock"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(GamedayError, match="cannot open the kwokctl lock"), \
            k8s.kwokctl_turn(path=link):
        pass
    assert not (tmp_path / "elsewhere").exists()


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


@pytest.mark.skipif(os.getuid() != 0, reason="making a file another user's takes root")
def test_a_lock_another_user_made_is_refused(tmp_path):
    theirs = tmp_path / "kwokctl.lock"
    theirs.touch(mode=0o666)
    os.chown(theirs, 65534, 65534)  # nobody's
    with pytest.raises(GamedayError, match="belongs to another user"), \
            k8s.kwokctl_turn(path=theirs):
        pass
