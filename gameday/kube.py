"""Kubernetes-level SLIs, for clusters whose pods serve no traffic (kwok).

A ``KubeSampler`` polls one Deployment's status through the API server; every poll is
a sample, good while the available replicas reach the count the Deployment had at
steady state (a fault that scales it down does not move the goal). The detector reads
these samples exactly as it reads request samples.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gameday.errors import GamedayError
from gameday.store import utc_now
from gameday.traffic import Sample, SampleLog


class KubeSampler(SampleLog):
    def __init__(self, kubeconfig: Path, namespace: str, deployment: str, *,
                 interval_s: float = 0.1, samples_path: Path | None = None):
        super().__init__(samples_path)
        self.kubeconfig, self.namespace, self.deployment = kubeconfig, namespace, deployment
        self.interval_s = interval_s
        self.rate = 1 / interval_s
        self.baseline: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kube-sampler", daemon=True)

    def start(self) -> None:
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self._apps = client.AppsV1Api(api)
        deadline = time.monotonic() + 60
        while True:
            status = self._status()
            if status and status[1] and status[0] >= status[1]:
                self.baseline = status[1]
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
        from kubernetes.client.exceptions import ApiException

        try:
            dep = self._apps.read_namespaced_deployment_status(self.deployment, self.namespace)
        except (ApiException, OSError):
            return None
        return dep.status.available_replicas or 0, dep.spec.replicas or 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            start = time.monotonic_ns()
            status = self._status()
            end = time.monotonic_ns()
            good = status is not None and status[0] >= (self.baseline or 1)
            self.record(Sample(start, end, utc_now(), 200 if good else 503, (end - start) / 1e6))
