"""Kubernetes-level SLIs, for clusters whose pods serve no traffic (kwok).

A ``KubeSampler`` polls one Deployment's status through the API server. Every poll
gives one sample per replica the Deployment had at steady state (a fault that scales it
down does not move the goal): good for each available replica, bad for each missing
one. So the success ratio is the share of capacity that is there (two of three
replicas: 67 %), and the detector reads these samples exactly as it reads requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gameday.core import events
from gameday.core.errors import GamedayError
from gameday.core.events import Entry
from gameday.slis.samples import Sample, SampleLog
from gameday.store import utc_now


def unanswered() -> tuple[type[Exception], ...]:
    """What the kubernetes client raises when the API server does not answer: an
    ``ApiException`` for an answer it did not like, urllib3's errors (not ``OSError``s)
    for a connection refused, reset or timed out. A sampler or a watch counts such a read
    as nothing read and goes on: a fault on the control plane, or a network blip, is
    what they are there to see, not the end of them."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    return ApiException, HTTPError, OSError


def use_kubeconfig(path: str | None) -> str | None:
    """Point the kubernetes client's default kubeconfig (what chaosk8s's activities
    load) at ``path``. The client reads ``$KUBECONFIG`` once, when it is first imported,
    and validating an experiment imports it before the target's cluster exists.
    Returns the previous default."""
    try:
        from kubernetes.config import kube_config
    except ImportError:
        return None
    previous: str = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    if path:
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path
    return previous


class KubeSampler(SampleLog):
    unit = "replica"  # a sample: one replica slot, available or not, at one read
    def __init__(self, kubeconfig: Path, namespace: str, deployment: str, *,
                 interval_s: float = 0.1, samples_path: Path | None = None,
                 context: str | None = None):
        super().__init__(samples_path)
        self.kubeconfig, self.namespace, self.deployment = kubeconfig, namespace, deployment
        self.context = context  # None: the kubeconfig's current context
        self.interval_s = interval_s
        self.rate = 1 / interval_s
        self.baseline: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kube-sampler", daemon=True)

    def start(self) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(self.kubeconfig),
                                            context=self.context)
        self._apps = client.AppsV1Api(api)
        deadline = time.monotonic() + 60
        while True:
            status = self._status()
            if status and status[1] and status[0] >= status[1]:
                self.baseline = status[1]
                self.rate = self.baseline / self.interval_s
                break
            if time.monotonic() > deadline:
                raise GamedayError(f"deployment {self.namespace}/{self.deployment} never "
                                   f"became available: {status}")
            time.sleep(0.2)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.close()

    def _status(self) -> tuple[int, int] | None:
        try:
            dep = self._apps.read_namespaced_deployment_status(self.deployment, self.namespace,
                                                               _request_timeout=5)
        except unanswered():
            return None
        # A Deployment the controller has not observed yet has no status: none available.
        available = dep.status.available_replicas if dep.status is not None else None
        return available or 0, dep.spec.replicas or 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            start = time.monotonic_ns()
            status = self._status()
            end = time.monotonic_ns()
            slots = self.baseline or 1
            available = min(status[0], slots) if status is not None else 0
            at_utc, latency_ms = utc_now(), (end - start) / 1e6
            for slot in range(slots):
                self.record(Sample(start, end, at_utc, 200 if slot < available else 503,
                                   latency_ms))


class KubeWatch:
    """What Kubernetes itself said during the game day: the namespace's events (and the
    nodes'), each recorded on the incident as a ``k8s.event`` when first seen, and the
    Deployment's replica counts, written beside the SLIs to ``k8s.jsonl``.

    Events that existed before the watch started belong to the set-up and are skipped;
    a run records at most ``limit`` of them, so an event storm cannot drown the record.
    """

    def __init__(self, kubeconfig: Path, namespace: str, deployment: str,
                 record: Callable[[Entry], object], path: Path, *,
                 interval_s: float = 0.5, limit: int = 300, context: str | None = None):
        self.kubeconfig, self.namespace, self.deployment = kubeconfig, namespace, deployment
        self.context = context  # None: the kubeconfig's current context
        self.record, self.path, self.interval_s, self.limit = record, path, interval_s, limit
        self.seen: set[str] = set()
        self.recorded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kube-watch", daemon=True)

    def start(self) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(self.kubeconfig),
                                            context=self.context)
        self._core, self._apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.seen = {e.metadata.uid for e in self._events()}
        self._file = open(self.path, "a", buffering=1)  # noqa: SIM115
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        self._poll()  # what happened in the last interval
        self._file.close()

    def _events(self) -> list[Any]:
        found = []
        for ns in (self.namespace, "default"):
            try:
                items = self._core.list_namespaced_event(ns, _request_timeout=5).items
            except unanswered():
                continue
            found += [e for e in items if ns == self.namespace
                      or e.involved_object.kind == "Node"]
        return found

    def _poll(self) -> None:
        fresh = [e for e in self._events() if e.metadata.uid not in self.seen]
        fresh.sort(key=_event_time)
        for e in fresh:
            self.seen.add(e.metadata.uid)
            if self.recorded >= self.limit:
                continue
            self.recorded += 1
            obj = e.involved_object
            when = _event_time(e)
            self.record(events.k8s_event(
                e.type, e.reason, f"{obj.kind}/{obj.name}", (e.message or "")[:500],
                count=e.count or 1,
                source=(e.reporting_component or (e.source.component if e.source else None)
                        or ""),
                at=when.isoformat() if when.year > 1 else None))
        try:
            dep = self._apps.read_namespaced_deployment_status(
                self.deployment, self.namespace, _request_timeout=5)
        except unanswered():
            return
        st = dep.status
        if st is None:  # not observed by the controller yet: no counts to write
            return
        if not self._file.closed:
            self._file.write(json.dumps({
                "at_ns": time.monotonic_ns(), "at_utc": utc_now(),
                "desired": dep.spec.replicas or 0, "available": st.available_replicas or 0,
                "ready": st.ready_replicas or 0, "updated": st.updated_replicas or 0,
                "unavailable": st.unavailable_replicas or 0}) + "\n")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()


def _event_time(e: Any) -> datetime:
    return (e.last_timestamp or e.event_time or e.first_timestamp
            or e.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC))


def replica_changes(path: Path) -> list[dict[str, Any]]:
    """The rows of ``k8s.jsonl`` where a replica count changed (and the first)."""
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    keys = ("desired", "available", "ready", "updated", "unavailable")
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if not out or any(row[k] != out[-1][k] for k in keys):
            out.append(row)
    return out
