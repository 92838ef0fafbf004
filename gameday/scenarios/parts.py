"""The parts of a scenario that say where it runs and how it is measured: the
Kubernetes workload, the synthetic traffic, the SLIs (gameday's requests or the team's
Prometheus), the SLO (the scenario's own or the team's OpenSLO file) and the stop
conditions. ``scenario`` puts them together with the team and the response."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from gameday.core.spec import (
    Between,
    Identifier,
    Line,
    Name,
    OneOf,
    RunTime,
    Seconds,
    Spec,
    invalid,
)

SLI_SOURCES = ("traffic", "prometheus")


def _http_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok or any(c.isspace() for c in value) or len(value) > 500:
        raise invalid("http_url", "must be an http(s) URL with a host, like "
                                  "http://127.0.0.1:9898/")
    return value


HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+(/\S*)?$"),
                    AfterValidator(_http_url)]
PromQL = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                          max_length=2000)]


class TrafficSpec(Spec):
    """The synthetic traffic the SLIs are measured on."""

    rate: Annotated[float, Between(1, 500)] = Field(
        default=40, description="Requests per second.")
    timeout: RunTime = Field(default=3.0, description="A request slower than this fails.")
    url: HttpUrl | None = Field(default=None, description=(
        "Where the requests go: a service target's entry point (required there; gameday's "
        "own targets know theirs). It must be on the project's allowlist ([safety] urls)."))


class SliSpec(Spec):
    """Where the SLIs come from: synthetic traffic (gameday's own requests), or the
    team's Prometheus with its own queries (a service target)."""

    source: Annotated[str, OneOf(SLI_SOURCES)] = Field(
        default="traffic", description="traffic (requests gameday sends) or prometheus.")
    prometheus: HttpUrl | None = Field(default=None, description=(
        "The team's Prometheus (prometheus source; on the allowlist, [safety] urls)."))
    success_ratio: PromQL | None = Field(default=None, description=(
        "PromQL for the share of good requests, 0 to 1 (prometheus source; or from "
        "slo.openslo)."))
    latency_p99_ms: PromQL | None = Field(default=None, description=(
        "PromQL for the latency percentile the SLO names, in milliseconds "
        "(prometheus source; or from slo.openslo)."))
    interval: Annotated[float, Seconds(0.25, 60, inclusive=True)] = Field(
        default=1.0, description="How often Prometheus is read (prometheus source).")
    rate_window: Annotated[float, Seconds(1, 3600, inclusive=True)] = Field(
        default=60.0, description=(
            "The rate() window for the counters of an OpenSLO ratio metric (slo.openslo); "
            "at least two of the team's scrape intervals."))

    @model_validator(mode="after")
    def _prometheus_needs_its_address(self) -> SliSpec:
        if self.source == "prometheus" and self.prometheus is None:
            raise invalid("required_for_source", "{key} is required when the source "
                          "is prometheus", key="prometheus")
        return self


class SloSpec(Spec):
    """The service level objective the alert and the severity are measured against."""

    success_ratio: Annotated[float, Between(0.5, 1)] | None = Field(
        default=None, description="Share of requests that must succeed, 0.5 to 1 (e.g. "
                                  "0.99); required unless openslo gives it.")
    latency_p99_ms: Annotated[float, Between(1, 3_600_000)] | None = Field(
        default=None, description="Objective for the 99th percentile latency, in "
                                  "milliseconds; required unless openslo gives it.")
    window: RunTime = Field(default=2.0, description="The window the SLIs are measured over.")
    openslo: Line | None = Field(default=None, description=(
        "The team's SLO as they wrote it: an OpenSLO v1 file (relative to this file) with "
        "a ratio SLO (the success objective and, with sli.source prometheus, its query) "
        "and optionally a threshold SLO on latency in milliseconds."))

    @model_validator(mode="after")
    def _objectives(self) -> SloSpec:
        for key in ("success_ratio", "latency_p99_ms"):
            if self.openslo is None and getattr(self, key) is None:
                raise invalid("missing", "{key} is required (or openslo, a file that "
                                         "gives it)", key=key)
        return self


class StopSpec(Spec):
    """When a game day stops at once, its fault rolled back: the SLIs far worse than
    the experiment meant (held for ``for``), or one of the team's alerts that means a
    real page firing."""

    success_ratio_below: Annotated[float, Between(0, 1)] | None = Field(
        default=None, description="Stop when the success ratio is below this.")
    latency_p99_ms_above: Annotated[float, Between(1, 3_600_000)] | None = Field(
        default=None, description="Stop when the p99 latency (ms) is above this.")
    for_: Annotated[float, Seconds(inclusive=True)] = Field(
        default=0.0, alias="for", description="How long the SLIs must stay past the floor.")
    alerts: list[Identifier] = Field(default=[], description=(
        "The team's alerts (alertnames in its Alertmanager) that stop the game day as soon "
        "as one is active: a real page (a service target with alertmanager)."))


class WorkloadSpec(Spec):
    """The Kubernetes workload under test (kind, kwok and kubernetes targets)."""

    namespace: Name | None = Field(default=None, description="Its namespace.")
    deployment: Name | None = Field(default=None, description="Its Deployment.")


Context = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:/-]{0,252}$")]


class ClusterSpec(Spec):
    """A team's own Kubernetes cluster (the kubernetes target): never created, changed
    or deleted by gameday; faults and runbooks act in it only where the allowlist says
    ([safety] contexts and namespaces)."""

    kubeconfig: Line | None = Field(default=None, description=(
        "The kubeconfig, relative to this file [default: $KUBECONFIG, else "
        "~/.kube/config]."))
    context: Context = Field(description=(
        "The kubeconfig context of the cluster; on the allowlist ([safety] contexts)."))
