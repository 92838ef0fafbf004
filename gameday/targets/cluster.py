"""Kubernetes targets: a kind cluster for users, a kwok cluster (a real control plane
with simulated nodes, no container engine) for control-plane game days and tests.

Everything goes through the tools' own command lines (``kind``, ``kwokctl``,
``kubectl``) with argument lists. A cluster that fails half-way is deleted again.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gameday.core.errors import GamedayError
from gameday.core.settings import current

IN_CLUSTER_ENV = "GAMEDAY_IN_CLUSTER"        # tells the target: use this cluster as it is
IN_CLUSTER_CONTEXT = "in-cluster"            # the kubeconfig's one context
NAMESPACE = "gameday-shop"
# In the project (this repository is one): the shop's manifests, kind's and kwok's configs.
MANIFESTS = Path("k8s") / "shop" / "shop.yaml"
KIND_CONFIG = Path("kind-config.yaml")
KWOKCTL_CONFIG = Path("k8s") / "kwok" / "kwokctl.yaml"
CONTROLPLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl",
                "kwok", "kwokctl", "etcd")
KWOKCTL_TURN_WAIT_S = 300  # a create with --wait 120s, or a delete, ahead of this one


def in_cluster() -> bool:
    """Running inside the cluster under test (a scheduled CronJob): the cluster and its
    shop are there already, reached through ``$KUBECONFIG``'s ``in-cluster`` context
    (the pod's ServiceAccount); nothing is created or deleted."""
    return os.environ.get(IN_CLUSTER_ENV) == "1"


def cluster_name() -> str:
    return os.environ.get("GAMEDAY_CLUSTER") or "gameday"


def k8s_bin() -> Path:
    """The control plane built by scripts/build-controlplane."""
    given = os.environ.get("GAMEDAY_K8S_BIN")
    return Path(given).resolve() if given else current().k8s_bin


def project_file(relative: Path) -> Path:
    return current().resolve(relative)


@dataclass(frozen=True)
class Cluster:
    provider: str
    kubeconfig: Path
    context: str


def _run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300,
         what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise GamedayError(f"{what} failed (exit {proc.returncode}): " + " | ".join(detail))
    return proc.stdout


def kwokctl_lock() -> Path:
    return Path(tempfile.gettempdir()) / f"gameday-kwokctl-{os.getuid()}.lock"


@contextmanager
def kwokctl_turn(*, wait_s: float = KWOKCTL_TURN_WAIT_S,
                 path: Path | None = None) -> Iterator[None]:
    """One ``kwokctl create`` or ``delete`` at a time for this user on this machine,
    whatever home it runs in (``path``: the lock, ``kwokctl_lock()`` unless given).
    kwokctl picks its components' ports by trying them one by one from 32767 down,
    skipping only ports that answer and those its own home's clusters record: two
    creating at once took the same ports, and the second cluster's API server stored its
    objects in the first one's etcd (its Deployments then never came up, or vanished
    with the other cluster). Each also rewrites ``~/.kube/config``."""
    path = path or kwokctl_lock()
    try:  # never through a link, and only a lock of this user's own
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise GamedayError(f"cannot open the kwokctl lock {path}: {e.strerror}") from None
    try:
        if os.fstat(fd).st_uid != os.getuid():
            raise GamedayError(f"the kwokctl lock {path} belongs to another user: remove it")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise GamedayError(f"another kwokctl create or delete on this machine "
                                       f"held {path} for {wait_s:.0f} s; try again when it "
                                       "has ended") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # lets the lock go with it


def container_engine() -> str | None:
    for engine in ("docker", "podman"):
        if shutil.which(engine):
            probe = subprocess.run([engine, "info"], capture_output=True, timeout=20)
            if probe.returncode == 0:
                return engine
    return None


def check_kind() -> None:
    missing = [b for b in ("kind", "kubectl") if shutil.which(b) is None]
    if missing:
        raise GamedayError(
            f"{' and '.join(missing)} not found on PATH: the kind provider needs kind "
            "(https://kind.sigs.k8s.io, `go install sigs.k8s.io/kind@latest`) and kubectl. "
            "Without a container engine use --provider kwok.")
    if container_engine() is None:
        raise GamedayError("kind needs a running container engine (docker or podman) and "
                           "none answers here; use --provider kwok for a container-free "
                           "cluster")


def check_kwok() -> Path:
    bindir = k8s_bin()
    missing = [b for b in CONTROLPLANE if not (bindir / b).exists()]
    if missing:
        raise GamedayError(f"missing {', '.join(missing)} in {bindir}: build them with "
                           "scripts/build-controlplane (Go, about 20 minutes the first time)")
    return bindir


def up(provider: str, *, nodes: int = 3) -> Cluster:
    if in_cluster():
        return existing(provider)
    if provider == "kind":
        check_kind()
        cluster = existing("kind")
        _run(["kind", "create", "cluster", "--name", cluster_name(),
              "--config", str(project_file(KIND_CONFIG)), "--kubeconfig",
              str(cluster.kubeconfig), "--wait", "180s"], timeout=600,
             what="kind create cluster")
    else:
        bindir = check_kwok()
        env = {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
        args = ["kwokctl", "create", "cluster", "--name", cluster_name(), "--runtime", "binary",
                "--config", str(project_file(KWOKCTL_CONFIG)),
                "--kube-apiserver-binary", str(bindir / "kube-apiserver"),
                "--kube-controller-manager-binary", str(bindir / "kube-controller-manager"),
                "--kube-scheduler-binary", str(bindir / "kube-scheduler"),
                "--kwok-controller-binary", str(bindir / "kwok"),
                "--etcd-binary", str(bindir / "etcd"), "--wait", "120s"]
        with kwokctl_turn():
            _run([str(bindir / args[0]), *args[1:]], env=env, timeout=300,
                 what="kwokctl create cluster")
        cluster = existing("kwok")
        try:
            _run([str(bindir / "kwokctl"), "--name", cluster_name(), "scale", "node", "--replicas",
                  str(nodes)], env=env, what="kwokctl scale node")
        except GamedayError:
            down("kwok")
            raise
    try:
        # Strict: the API server refuses unknown or misspelled fields.
        kubectl(cluster, "apply", "--validate=strict", "-f", str(project_file(MANIFESTS)))
        if provider == "kind":
            kubectl(cluster, "-n", NAMESPACE, "rollout", "status", "deployment/frontend",
                    "--timeout=180s")
    except GamedayError:
        down(provider)
        raise
    return cluster


def down(provider: str) -> None:
    if in_cluster():
        return  # not ours to delete
    if provider == "kind":
        if shutil.which("kind"):
            _run(["kind", "delete", "cluster", "--name", cluster_name()],
                 what="kind delete cluster")
        return
    bindir = k8s_bin()
    if (bindir / "kwokctl").exists():
        with kwokctl_turn():
            _run([str(bindir / "kwokctl"), "delete", "cluster", "--name", cluster_name()],
                 env={"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"},
                 what="kwokctl delete cluster")


def existing(provider: str) -> Cluster:
    """Where a cluster of this provider and name keeps its kubeconfig, and its context."""
    if in_cluster():
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            raise GamedayError(f"{IN_CLUSTER_ENV}=1 needs KUBECONFIG (the CronJob mounts one)")
        return Cluster(provider, Path(kubeconfig), IN_CLUSTER_CONTEXT)
    if provider == "kind":
        return Cluster("kind", current().state_dir / "kind.kubeconfig", f"kind-{cluster_name()}")
    return Cluster("kwok", Path.home() / ".kwok" / "clusters" / cluster_name() / "kubeconfig.yaml",
                   f"kwok-{cluster_name()}")


def kubectl(cluster: Cluster, *args: str, timeout: float = 120) -> str:
    binary = (shutil.which("kubectl") if cluster.provider == "kind" or in_cluster()
              else str(k8s_bin() / "kubectl"))
    if not binary or not Path(binary).exists():
        raise GamedayError("kubectl not found")
    return _run([binary, "--kubeconfig", str(cluster.kubeconfig), *args], timeout=timeout,
                what=f"kubectl {' '.join(args[:2])}")
