"""The kwok control plane for tests that apply manifests to a real API server.

``scripts/build-controlplane`` builds kube-apiserver, kube-controller-manager,
kube-scheduler, kubectl, kwok and etcd into ``.gameday/k8s/bin``; where it has not run,
``needs_build`` skips. ``kwok_cluster`` gives a test module a cluster of its own name (so
that it never meets a user's cluster, nor another module's), with gameday's demo shop in
it as ``gameday.targets.cluster.up`` makes it, and deletes it afterwards. ``apply_strictly`` is
the apply the manifests' headers tell people to run: server-side, refusing unknown or
misspelled fields.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gameday.core.errors import GamedayError
from gameday.targets import cluster as k8s

ROOT = Path(__file__).resolve().parent.parent

BUILT = all((k8s.k8s_bin() / b).exists() for b in k8s.CONTROLPLANE)
needs_build = pytest.mark.skipif(not BUILT, reason="control-plane binaries not built "
                                                   "(scripts/build-controlplane)")
APPLY = ("apply", "--server-side", "--field-manager=gameday", "--validate=strict")


@contextmanager
def kwok_cluster(name: str, *, nodes: int = 3) -> Iterator[k8s.Cluster]:
    """A kwok cluster called ``name`` with ``nodes`` simulated nodes, for the ``with``
    block; the working directory is the repository meanwhile (kwokctl's configuration
    and the shop's manifests are project files)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setenv("GAMEDAY_CLUSTER", name)
        k8s.down("kwok")  # what an interrupted run may have left
        try:
            yield k8s.up("kwok", nodes=nodes)
        finally:
            k8s.down("kwok")


def kwokctl(*args: str) -> subprocess.CompletedProcess[str]:
    """The control plane's ``kwokctl`` with ``args``, its binaries first on PATH."""
    bindir = k8s.k8s_bin()
    return subprocess.run([str(bindir / "kwokctl"), *args], capture_output=True, text=True,
                          timeout=120,
                          env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})


def own_home(monkeypatch: pytest.MonkeyPatch, home: Path, cluster: str) -> Path:
    """A home of its own for a test whose game day makes kwok cluster ``cluster``:
    kwokctl keeps its clusters under ``~/.kwok`` and adds each to ``~/.kube/config``, so
    it keeps them (and their contexts) from the user's and from other runs'. Where the
    cluster's kubeconfig will be; there must be none yet."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GAMEDAY_CLUSTER", cluster)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kubeconfig = k8s.existing("kwok").kubeconfig
    assert not kubeconfig.parent.exists(), f"a cluster named {cluster} exists already"
    return kubeconfig


def kubectl_binary() -> str | None:
    """The control plane's kubectl (the version it serves), else one on PATH."""
    built = k8s.k8s_bin() / "kubectl"
    return str(built) if built.exists() else shutil.which("kubectl")


def kustomize(directory: Path) -> str:
    """``kubectl kustomize DIRECTORY``: the stream ``kubectl apply -k`` would send."""
    binary = kubectl_binary()
    if binary is None:
        raise GamedayError("kubectl not found")
    proc = subprocess.run([binary, "kustomize", str(directory)], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        raise GamedayError(f"kubectl kustomize failed: {proc.stderr.strip()}")
    return proc.stdout


def apply_strictly(cluster: k8s.Cluster, path: Path, *, dry_run: bool = False) -> str:
    """Server-side apply with strict validation; the API server's warnings (kubectl's
    stderr). What it refuses raises GamedayError with the refusal."""
    extra = ("--dry-run=server",) if dry_run else ()
    proc = subprocess.run([str(k8s.k8s_bin() / "kubectl"), "--kubeconfig",
                           str(cluster.kubeconfig), *APPLY, *extra, "-f", str(path)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise GamedayError(f"kubectl apply refused {path.name}: {proc.stderr.strip()}")
    return proc.stderr


@contextmanager
def own_kwok_cluster(name: str, *, nodes: int = 2) -> Iterator[k8s.Cluster]:
    """A kwok cluster as a team runs one: made with kwokctl here (not by gameday), empty
    but for its nodes, deleted afterwards; what runs in it is the test's to apply."""
    bindir = k8s.k8s_bin()
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    kwokctl = str(bindir / "kwokctl")

    def run(*args: str, timeout: float = 300) -> None:
        proc = subprocess.run([kwokctl, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise GamedayError(f"kwokctl {args[0]}: {proc.stderr.strip()[-500:]}")

    # In turn with every other kwokctl create here (another test process's among them):
    # two at once pick the same ports.
    with k8s.kwokctl_turn():
        subprocess.run([kwokctl, "delete", "cluster", "--name", name], env=env,
                       capture_output=True, timeout=120)  # what an interrupted run left
        run("create", "cluster", "--name", name, "--runtime", "binary",
            "--config", str(ROOT / "k8s" / "kwok" / "kwokctl.yaml"),
            "--kube-apiserver-binary", str(bindir / "kube-apiserver"),
            "--kube-controller-manager-binary", str(bindir / "kube-controller-manager"),
            "--kube-scheduler-binary", str(bindir / "kube-scheduler"),
            "--kwok-controller-binary", str(bindir / "kwok"),
            "--etcd-binary", str(bindir / "etcd"), "--wait", "120s")
    try:
        run("--name", name, "scale", "node", "--replicas", str(nodes))
        yield k8s.Cluster("kwok", Path.home() / ".kwok" / "clusters" / name / "kubeconfig.yaml",
                          f"kwok-{name}")
    finally:
        with k8s.kwokctl_turn():
            run("delete", "cluster", "--name", name, timeout=120)
