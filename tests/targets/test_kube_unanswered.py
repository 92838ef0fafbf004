"""A cluster's API server that stops answering mid-game-day (a fault on the control
plane, a network blip): the Deployment sampler counts the replicas it cannot see as
missing and the event watch goes on, both until the API server answers again; neither
thread dies."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
from controlplane import needs_build, own_kwok_cluster
from serving import eventually

from gameday.targets import cluster as k8s
from gameday.targets.kube import KubeSampler, KubeWatch

pytestmark = [pytest.mark.slow, needs_build]
NAME = "gameday-unanswered"
DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "default"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
             "template": {"metadata": {"labels": {"app": "api"}},
                          "spec": {"containers": [{"name": "api", "image": "api:1"}]}}}}


def kwokctl(*args: str) -> None:
    bindir = k8s.k8s_bin()
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(bindir / "kwokctl"), "--name", NAME, *args], env=env, check=True,
                   capture_output=True, timeout=180)


def statuses(path: Path) -> list[int]:
    return [json.loads(line)["status"] for line in path.read_text().splitlines()]


def test_the_sampler_and_the_watch_outlive_an_api_server_that_stops_answering(tmp_path):
    died: list[threading.ExceptHookArgs] = []
    previous, threading.excepthook = threading.excepthook, died.append
    try:
        with own_kwok_cluster(NAME) as cluster:
            manifest = tmp_path / "api.json"
            manifest.write_text(json.dumps(DEPLOYMENT))
            subprocess.run([str(k8s.k8s_bin() / "kubectl"), "--kubeconfig",
                            str(cluster.kubeconfig), "apply", "-f", str(manifest)],
                           check=True, capture_output=True, timeout=60)
            samples = tmp_path / "samples.jsonl"
            sampler = KubeSampler(cluster.kubeconfig, "default", "api", samples_path=samples,
                                  context=cluster.context)
            sampler.start()  # once both replicas are available
            watch = KubeWatch(cluster.kubeconfig, "default", "api", lambda entry: None,
                              tmp_path / "k8s.jsonl", context=cluster.context)
            watch.start()
            try:
                # Stopped, the cluster's ports are free: no other kwokctl create may
                # take them before it starts again.
                with k8s.kwokctl_turn():
                    kwokctl("stop", "cluster")  # the API server goes away
                    seen = len(statuses(samples))
                    eventually(lambda: statuses(samples)[seen:].count(503) >= 10, 60,
                               "samples of replicas the API server no longer shows")
                    kwokctl("start", "cluster")
                    answered = len(statuses(samples))  # its ports taken again, in turn
                    eventually(lambda: 200 in statuses(samples)[answered:], 120,
                               "samples of the replicas once it answers again")
                assert sampler._thread.is_alive() and watch._thread.is_alive()
            finally:
                watch.stop()
                sampler.stop()
    finally:
        threading.excepthook = previous
    assert died == []
