"""A team's monitoring of its own Kubernetes cluster, for game days on it.

``DeploymentMetrics`` stands in for kube-state-metrics: an exporter the test runs on
loopback (a thread with ``http.server``) that, on each scrape of ``/metrics``, reads the
Deployments of one namespace from the cluster's API server (the kubernetes Python
client, the team's kubeconfig and context) and answers with the series
kube-state-metrics would expose for them, in Prometheus's text format:
``kube_deployment_spec_replicas`` and ``kube_deployment_status_replicas_available``,
labelled ``namespace`` and ``deployment``. Debian's Prometheus scrapes it with the team's
rules and Alertmanager holds their alerts (``teamstack.monitoring``); gameday gets only
their addresses.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from teamstack import Monitoring, monitoring

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS = (
    ("kube_deployment_spec_replicas", "Number of desired pods for a deployment."),
    ("kube_deployment_status_replicas_available",
     "The number of available replicas per deployment."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class DeploymentMetrics:
    """kube-state-metrics' Deployment replica series for ``namespace``, read from the API
    server at each scrape (a scrape the API server does not answer is a 503: Prometheus
    marks the target down rather than seeing stale numbers)."""

    def __init__(self, kubeconfig: Path, context: str, namespace: str):
        from kubernetes import client, config

        self.namespace = namespace
        self.apps = client.AppsV1Api(config.new_client_from_config(
            config_file=str(kubeconfig), context=context))
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                try:
                    body = exporter.render().encode()
                except Exception as exc:  # the API server unreachable, refusing, ...
                    self.send_error(503, explain=str(exc)[:300])
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return None  # one a second: not worth the test's output

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="kube-state-metrics", daemon=True)

    @property
    def address(self) -> str:
        """``HOST:PORT``, as a scrape config names a target."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def render(self) -> str:
        """The namespace's Deployments, now, as Prometheus text."""
        found = self.apps.list_namespaced_deployment(self.namespace, _request_timeout=5)
        values: dict[str, list[str]] = {name: [] for name, _ in METRICS}
        for d in found.items:
            labels = (f'namespace="{_label(d.metadata.namespace)}",'
                      f'deployment="{_label(d.metadata.name)}"')
            spec = d.spec.replicas if d.spec and d.spec.replicas is not None else 1
            available = (d.status.available_replicas if d.status else 0) or 0
            values["kube_deployment_spec_replicas"].append(f"{{{labels}}} {spec}")
            values["kube_deployment_status_replicas_available"].append(
                f"{{{labels}}} {available}")
        lines = []
        for name, help_text in METRICS:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [name + v for v in values[name]]
        self.scrapes += 1
        return "\n".join(lines) + "\n"

    def start(self) -> DeploymentMetrics:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class ClusterMonitoring:
    """The exporter for ``namespace`` and a Prometheus scraping it every second with the
    team's ``rules``, its alerts to Alertmanager; ``stop`` ends all three."""

    def __init__(self, directory: Path, kubeconfig: Path, context: str, namespace: str,
                 rules: str):
        self.directory, self.rules = directory, rules
        self.exporter = DeploymentMetrics(kubeconfig, context, namespace)
        self.stack: Monitoring | None = None

    def start(self) -> ClusterMonitoring:
        self.exporter.start()
        try:
            self.stack = monitoring(self.directory,
                                    {"kube-state-metrics": [self.exporter.address]},
                                    self.rules)
        except BaseException:
            self.exporter.stop()
            raise
        return self

    @property
    def prometheus(self) -> str:
        assert self.stack is not None
        return self.stack.prometheus

    @property
    def alertmanager(self) -> str:
        assert self.stack is not None
        return self.stack.alertmanager

    def running(self) -> bool:
        """Prometheus and Alertmanager still run."""
        return self.stack is not None and all(p.poll() is None
                                              for p in self.stack.procs.values())

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
        self.exporter.stop()
