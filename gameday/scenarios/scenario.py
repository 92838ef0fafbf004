"""Scenario files: load, validate, and freeze them.

A scenario (``scenarios/*.yaml``) ties a target, a Chaos Toolkit experiment, the SLO
and alert, the team's roster and response model, response targets and timeouts
together. Raw YAML stops here: everything after this module gets frozen dataclasses,
and every error names the file and the field.

The file's rules are declared once, as pydantic models (``ScenarioSpec`` and its
parts, built from the field types in ``spec``); ``load_scenario`` validates against
them and freezes the result, and ``scenario_schema`` prints them as JSON Schema for
editors (``gameday schema scenario``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic import ValidationError as PydanticError

from gameday.core.errors import ValidationError
from gameday.core.policy import DEFAULT_TARGETS, MODELS, SEVERITIES, TARGET_KEYS
from gameday.core.spec import (
    DAY,
    Identifier,
    Labels,
    Line,
    Name,
    OneOf,
    People,
    Person,
    Rotation,
    RunTime,
    Scalar,
    Seconds,
    Spec,
    Text,
    first_error,
    human_span,
    invalid,
    json_schema,
    quote,
    read_yaml,
)
from gameday.core.spec import parse_duration as parse_duration  # part of this module's interface
from gameday.runbooks.routing import runbook_in_link
from gameday.scenarios.drill import DrillSpec
from gameday.scenarios.parts import (
    ClusterSpec,
    HttpUrl,
    SliSpec,
    SloSpec,
    StopSpec,
    TrafficSpec,
    WorkloadSpec,
)

TARGETS = ("sandbox", "kind", "kwok", "service", "kubernetes")
CLUSTERS = ("kind", "kwok", "kubernetes")  # the targets that name a Kubernetes workload
OWN = ("service", "kubernetes")  # a team's own systems: their Prometheus, Alertmanager
MODES = ("auto", "drill", "none")
ALERTING = ("builtin", "prometheus", "alertmanager")


@dataclass(frozen=True)
class Team:
    name: str
    model: str
    oncall: tuple[str, ...]
    ic_rotation: tuple[str, ...]
    scribe: str | None = None
    comms: str | None = None
    responders: tuple[str, ...] = ()

    def people(self) -> list[str]:
        seen: list[str] = []
        for p in (*self.oncall, *self.ic_rotation, self.scribe, self.comms, *self.responders):
            if p and p not in seen:
                seen.append(p)
        return seen


@dataclass(frozen=True)
class Slo:
    success_ratio: float
    latency_p99_ms: float
    window_s: float


@dataclass(frozen=True)
class Alert:
    name: str
    for_s: float
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class Response:
    mode: str
    runbook: str | None
    params: dict[str, str]


@dataclass(frozen=True)
class Timeouts:
    steady: float = 15.0
    detect: float = 20.0
    mitigate: float = 20.0
    recover: float = 20.0


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    title: str
    description: str
    target: str
    experiment: Path
    service: str
    team: Team
    traffic_rate: float
    traffic_timeout_s: float
    slo: Slo
    alert: Alert
    alerting: str
    workload: dict[str, str]
    response: Response
    recovery_window_s: float
    evaluation_interval_s: float
    timeouts: Timeouts
    targets: dict[str, dict[str, float]] = field(default_factory=dict)
    customer_facing: str = ""  # what customers call the service, in customer updates
    traffic_url: str | None = None  # a service target's entry point
    sli: dict[str, Any] = field(default_factory=dict)  # SliSpec: where the SLIs come from
    alertmanager: str | None = None  # the team's Alertmanager (alerting: alertmanager)
    stop_when: dict[str, Any] | None = None  # StopSpec: when the game day stops at once
    drill: DrillSpec | None = None  # injects and hints, for training drills
    inventory: Path | None = None  # a service target's Ansible inventory of its hosts
    cluster: dict[str, str] | None = None  # a kubernetes target's kubeconfig and context
    replay: dict[str, Any] | None = None  # ReplaySpec: the real incident it rehearses

    def target_for(self, severity: str) -> dict[str, float]:
        return self.targets.get(severity, {})


# -- the scenario file ---------------------------------------------------------------------
class TeamSpec(Spec):
    """The team that owns the service: who is on call, who can command, who writes and
    who talks."""

    name: Name = Field(description="The team's name.")
    model: Annotated[str, OneOf(MODELS)] = Field(
        default="hybrid", description="Response model: hybrid (SEV-3/4 stay with the owning "
        "team, SEV-1/2 page the dedicated IC), centralized or distributed.")
    oncall: Rotation = Field(description="The on-call rotation, one person a week.")
    ic_rotation: Rotation = Field(description="The dedicated incident commanders' rotation.")
    scribe: Person | None = Field(default=None, description="Who keeps the incident's notes.")
    comms: Person | None = Field(default=None, description="The communications lead.")
    responders: People = Field(default=[], description="Subject-matter responders.")


class AlertSpec(Spec):
    """The alert that fires when the SLO burns, as Prometheus would send it."""

    name: Identifier = Field(description="The alert's name (alertname).")
    for_: Annotated[float, Seconds(inclusive=True)] = Field(
        default=0.0, alias="for", description="How long the condition holds before it fires.")
    labels: Labels = Field(default={}, description="Labels; they fill the runbook's "
                                                   "parameters.")
    annotations: Labels = Field(default={}, description="Annotations; runbook_url links the "
                                                        "runbook that contains it.")

    @field_validator("annotations", mode="before")
    @classmethod
    def _runbook_url_links_a_runbook(cls, value: Any) -> Any:
        """A scenario's ``runbook_url`` is one of the project's runbooks or absent: a
        link the game day would silently pass over is a mistake in the file."""
        if isinstance(value, dict) and "runbook_url" in value:
            url = value["runbook_url"]
            try:
                linked = runbook_in_link(url) if isinstance(url, str) and url else None
            except ValidationError:
                linked = None
            if linked is None:
                raise invalid("runbook_url", "runbook_url must link one of the project's "
                              "runbooks (…/runbooks/NAME, ?param=value optional), not {value}",
                              value=quote(url))
        return value


class ResponseSpec(Spec):
    """How the incident is answered."""

    mode: Annotated[str, OneOf(MODES)] = Field(
        default="auto", description="auto: run the linked runbook; drill: people respond; "
                                    "none.")
    runbook: Name | None = Field(default=None, description="Run this runbook instead of the "
                                                           "one the alert links.")
    params: dict[Identifier, Scalar] = Field(default={}, description="Runbook parameters "
                                                                     "that override the "
                                                                     "alert's labels.")


class TimeoutsSpec(Spec):
    """How long each stage may take before the game day gives up on it."""

    steady: RunTime = Field(default=Timeouts.steady, description="The steady state before.")
    detect: RunTime = Field(default=Timeouts.detect, description="From fault to alert.")
    mitigate: RunTime = Field(default=Timeouts.mitigate, description="From alert to mitigation.")
    recover: RunTime = Field(default=Timeouts.recover, description="For the service to recover.")


Severity = Annotated[str, OneOf(SEVERITIES)]
TargetKey = Annotated[str, OneOf(TARGET_KEYS)]
Target = Annotated[float, Seconds(high=30 * DAY)]
SYMPTOMS = ("availability", "errors", "latency")  # the kinds of impact faults produce


class ReplaySpec(Spec):
    """The real incident a training drill rehearses (``gameday drill start
    --from-incident``): the debrief puts its timings beside the drill's."""

    incident: int = Field(ge=1, description="The real incident's id in the store.")
    alert: Identifier = Field(description="The alert that opened it.")
    severity_declared: Severity | None = Field(default=None, description=(
        "The severity it was run at."))
    severity_measured: Severity | None = Field(default=None, description=(
        "The severity its measured impact implied, where it was measured."))
    symptom: Annotated[str, OneOf(SYMPTOMS)] = Field(description=(
        "The kind of impact the alert saw, which the drill's fault reproduces."))
    fault: Line = Field(description="The fault registry's activity chosen (module:function).")
    why: Line = Field(description="Why that fault: what it does that the incident showed.")


class ScenarioSpec(Spec):
    """A game day: the target, the fault (a Chaos Toolkit experiment), the SLO and the
    alert, the team and how it responds, and the targets its response is scored on."""

    name: Name = Field(description="The scenario's name.")
    title: Line = Field(description="One line saying what happens.")
    description: Text = Field(default="", description="What happens and what is expected.")
    target: Annotated[str, OneOf(TARGETS)] = Field(
        default="sandbox", description="Where it runs: the embedded sandbox, a kind or "
                                       "kwok cluster gameday makes, a team's own service "
                                       "(its entry point is traffic.url) or a team's own "
                                       "Kubernetes cluster (cluster).")
    cluster: ClusterSpec | None = Field(default=None, description=(
        "The team's own cluster (required when the target is kubernetes)."))
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec, description=(
        "The Kubernetes workload; namespace and deployment are required unless the "
        "target is the sandbox."))
    experiment: Line = Field(description="The Chaos Toolkit experiment, relative to "
                                         "this file.")
    service: Name = Field(description="The service under test.")
    customer_facing: Line | None = Field(default=None, description=(
        "What customers call the service, in customer updates [default: the service]."))
    team: TeamSpec
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    sli: SliSpec = Field(default_factory=SliSpec)
    slo: SloSpec
    alert: AlertSpec
    alerting: Annotated[str, OneOf(ALERTING)] = Field(
        default="builtin", description=(
            "Where the alert comes from: the built-in SLO burn detector, gameday's own "
            "Prometheus and Alertmanager (the sandbox), or the team's Alertmanager "
            "(alertmanager: a service target's alert, by its name and labels)."))
    inventory: Line | None = Field(default=None, description=(
        "The team's Ansible inventory of the service's hosts, relative to this file (a "
        "service target): host faults and runbooks act on its hosts that the allowlist "
        "names ([safety] hosts)."))
    alertmanager: HttpUrl | None = Field(default=None, validate_default=True, description=(
        "The team's Alertmanager, asked (API v2) whether the alert is active "
        "(alerting: alertmanager; on the allowlist, [safety] urls)."))
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    recovery_window: RunTime = Field(
        default=2.0, description="How long the SLI must stay inside the objective to count "
                                 "as mitigated.")
    evaluation_interval: Annotated[float, Seconds(0.01, 0.25, inclusive=True)] = Field(
        default=0.25, description="How often the detector evaluates, 10ms to 250ms.")
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec)
    stop_when: StopSpec | None = Field(default=None, description=(
        "Stop conditions: when one holds, the fault is rolled back at once and the game "
        "day ends aborted (gameday run exits 5)."))
    drill: DrillSpec | None = Field(default=None, description=(
        "Injects and hints for a training drill (gameday drill start): what happens to "
        "the responders, what is expected of them, and the help they can ask for."))
    replay: ReplaySpec | None = Field(default=None, description=(
        "The real incident this scenario rehearses, when it was made from one."))
    targets: dict[Severity, dict[TargetKey, Target]] = Field(default={}, description=(
        "Response targets per severity, overriding the defaults key by key: "
        + "; ".join(f"{sev} " + ", ".join(f"{k} {human_span(v)}" for k, v in keys.items())
                    for sev, keys in DEFAULT_TARGETS.items()) + "."))

    @field_validator("sli")
    @classmethod
    def _prometheus_on_a_service(cls, sli: SliSpec, info: ValidationInfo) -> SliSpec:
        if sli.source != "traffic" and info.data.get("target") not in (None, *OWN):
            raise invalid("service_only", "a team's own Prometheus is read on a service "
                                          "or kubernetes target only")
        return sli

    @field_validator("cluster")
    @classmethod
    def _cluster_on_kubernetes(cls, cluster: ClusterSpec | None,
                               info: ValidationInfo) -> ClusterSpec | None:
        target = info.data.get("target")
        if target == "kubernetes" and cluster is None:
            raise invalid("required_for_target", "is required when the target is kubernetes")
        if target != "kubernetes" and cluster is not None:
            raise invalid("not_for_target", "names a team's own cluster: the kubernetes "
                                            "target's (gameday makes its kind and kwok "
                                            "clusters itself)")
        return cluster

    @field_validator("alertmanager")
    @classmethod
    def _alertmanager_when_alerting(cls, url: str | None,
                                    info: ValidationInfo) -> str | None:
        if info.data.get("alerting") == "alertmanager":
            if url is None:
                raise invalid("required_for_alerting", "is required when alerting is "
                                                       "alertmanager")
            if info.data.get("target") not in (None, *OWN):
                raise invalid("service_only", "a team's own Alertmanager is asked on a "
                                              "service or kubernetes target only")
        return url

    @field_validator("stop_when")
    @classmethod
    def _stop_alerts_need_alertmanager(cls, stop: StopSpec | None,
                                       info: ValidationInfo) -> StopSpec | None:
        if stop is not None and stop.alerts and info.data.get("alertmanager") is None:
            raise invalid("needs_alertmanager", "alerts need the team's Alertmanager "
                                                "(alertmanager)")
        return stop

    @field_validator("inventory")
    @classmethod
    def _inventory_on_a_service(cls, inventory: str | None,
                                info: ValidationInfo) -> str | None:
        if inventory is not None and info.data.get("target") not in (None, "service"):
            raise invalid("service_only", "an inventory of the team's hosts belongs to a "
                                          "service target")
        return inventory

    @field_validator("traffic")
    @classmethod
    def _service_needs_url(cls, traffic: TrafficSpec, info: ValidationInfo) -> TrafficSpec:
        target = info.data.get("target")
        if target == "service" and traffic.url is None:
            raise invalid("required_for_target", "url is required when the target is "
                                                 "service")
        if target not in (None, *OWN) and traffic.url is not None:
            raise invalid("not_for_target", "url is for a service or kubernetes target; "
                                            "{target} knows its own entry point",
                          target=target)
        return traffic

    @field_validator("workload")
    @classmethod
    def _cluster_needs_workload(cls, workload: WorkloadSpec,
                                info: ValidationInfo) -> WorkloadSpec:
        target = info.data.get("target")
        if target in CLUSTERS:
            for key in ("namespace", "deployment"):
                if getattr(workload, key) is None:
                    raise invalid("required_for_target", "is required when the target is {target}",
                                  key=key, target=target)
        return workload


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files."""
    schema = json_schema(ScenarioSpec, "gameday scenario")
    # The rules between fields: a cluster target names its workload, a service target
    # its entry point.
    schema["allOf"] = [
        {"if": {"properties": {"target": {"enum": list(CLUSTERS)}}, "required": ["target"]},
         "then": {"required": ["workload"], "properties": {
             "workload": {"required": ["namespace", "deployment"]}}}},
        {"if": {"properties": {"target": {"const": "service"}}, "required": ["target"]},
         "then": {"required": ["traffic"], "properties": {"traffic": {"required": ["url"]}}},
         "else": {"properties": {"inventory": False}}},
        {"if": {"properties": {"target": {"const": "kubernetes"}}, "required": ["target"]},
         "then": {"required": ["cluster"]}, "else": {"properties": {"cluster": False}}},
        # a team's own Prometheus and Alertmanager are read on its own systems only
        {"if": {"properties": {"target": {"enum": list(OWN)}}, "required": ["target"]},
         "else": {"properties": {
             "traffic": {"not": {"required": ["url"]}},
             "sli": {"properties": {"source": {"const": "traffic"}}},
             "alerting": {"not": {"const": "alertmanager"}},
             "stop_when": {"properties": {"alerts": {"maxItems": 0}}}}}},
        {"if": {"properties": {"alerting": {"const": "alertmanager"}}, "required": ["alerting"]},
         "then": {"required": ["alertmanager"]}},
        {"if": {"properties": {"stop_when": {"properties": {"alerts": {"minItems": 1}},
                                             "required": ["alerts"]}},
                "required": ["stop_when"]},
         "then": {"required": ["alertmanager"]}},
        {"if": {"properties": {"sli": {"properties": {"source": {"const": "prometheus"}},
                                       "required": ["source"]}},
                "required": ["sli"]},
         "then": {"properties": {"sli": {"required": ["prometheus"]}}}},
        # the objectives are the scenario's own unless an OpenSLO file gives them
        {"if": {"properties": {"slo": {"not": {"required": ["openslo"]}}}},
         "then": {"properties": {"slo": {"required": ["success_ratio", "latency_p99_ms"]}}}},
    ]
    return schema


# -- loading ---------------------------------------------------------------------------
def load_scenario(path: str | Path, *, check_experiment: bool = True) -> Scenario:
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ValidationError(f"must be a mapping, not {quote(raw)}", file=str(path),
                              field="(top level)")
    try:
        spec = ScenarioSpec.model_validate(raw)
    except PydanticError as exc:
        raise first_error(exc, path) from None
    experiment = path.parent / spec.experiment
    if check_experiment and not _is_file(experiment):
        raise ValidationError(f"no such file: {experiment}", file=str(path),
                              field="experiment")
    inventory = path.parent / spec.inventory if spec.inventory is not None else None
    if check_experiment and inventory is not None and not _is_file(inventory) \
            and not _is_dir(inventory):
        raise ValidationError(f"no such inventory: {inventory}", file=str(path),
                              field="inventory")
    return replace(_freeze(path, spec, experiment, _objectives(path, spec), inventory),
                   cluster=_cluster(path, spec))


def _cluster(path: Path, spec: ScenarioSpec) -> dict[str, str] | None:
    """A kubernetes target's kubeconfig (the scenario's, else $KUBECONFIG's first file,
    else ~/.kube/config) and context; the target checks they are there (inside the
    cluster, as a CronJob, the pod's own kubeconfig stands in for them)."""
    if spec.cluster is None:
        return None
    given = spec.cluster.kubeconfig
    if given is not None:
        kubeconfig = path.parent / Path(given).expanduser()
    else:
        listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        kubeconfig = Path(listed[0] if listed else "~/.kube/config").expanduser()
    return {"kubeconfig": str(kubeconfig.resolve()), "context": spec.cluster.context}


def as_run(sc: Scenario) -> str:
    """The scenario as a game day ran it, for its run directory: the files it names
    (experiment, OpenSLO file, inventory) by absolute path, so the copy reads alone."""
    raw = read_yaml(sc.path)
    assert isinstance(raw, dict)  # it loaded as a scenario
    raw["experiment"] = str(sc.experiment.resolve())
    if sc.inventory is not None:
        raw["inventory"] = str(sc.inventory.resolve())
    if sc.cluster is not None:
        raw["cluster"]["kubeconfig"] = sc.cluster["kubeconfig"]
    if isinstance(raw.get("slo"), dict) and raw["slo"].get("openslo"):
        raw["slo"]["openslo"] = str((sc.path.parent / raw["slo"]["openslo"]).resolve())
    return (f"# {sc.path}, as run (the files it names by absolute path)\n"
            + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _objectives(path: Path, spec: ScenarioSpec) -> tuple[Slo, dict[str, Any]]:
    """The SLO and the SLI queries: the scenario's own, or the team's OpenSLO file's
    where the scenario leaves them out (giving both is refused: one home for each)."""
    slo, sli = spec.slo, spec.sli.model_dump()
    success, latency = slo.success_ratio, slo.latency_p99_ms
    prometheus = sli["source"] == "prometheus"
    if slo.openslo is not None:
        from gameday.slis.openslo import load_openslo

        doc = path.parent / slo.openslo
        if not _is_file(doc):
            raise ValidationError(f"no such file: {doc}", file=str(path), field="slo.openslo")
        imported = load_openslo(doc, rate_window_s=spec.sli.rate_window)
        given = {("slo", "success_ratio"): success,
                 ("sli", "success_ratio"): sli["success_ratio"] if prometheus else None}
        if imported.latency_p99_ms is not None:
            given |= {("slo", "latency_p99_ms"): latency,
                      ("sli", "latency_p99_ms"): sli["latency_p99_ms"] if prometheus else None}
        for (table, key), value in given.items():
            if value is not None:
                raise ValidationError(f"also given by {slo.openslo} ({imported.name}): leave "
                                      "it out, or leave out the OpenSLO file",
                                      file=str(path), field=f"{table}.{key}")
        success = imported.success_ratio
        latency = latency if imported.latency_p99_ms is None else imported.latency_p99_ms
        if prometheus:
            sli["success_ratio"] = imported.success_ratio_query
            sli["latency_p99_ms"] = imported.latency_query or sli["latency_p99_ms"]
        sli["openslo"] = {"file": str(doc), "slo": imported.name, "queries": imported.queries}
    needed = {"slo.latency_p99_ms": latency}
    if prometheus:
        needed |= {f"sli.{k}": sli[k] for k in ("success_ratio", "latency_p99_ms")}
    for where, value in needed.items():
        if value is None:
            why = " (the OpenSLO file has no latency SLO)" if slo.openslo else ""
            raise ValidationError(f"is required{why}", file=str(path), field=where)
    assert success is not None and latency is not None
    return Slo(success_ratio=success, latency_p99_ms=latency, window_s=slo.window), sli


def _freeze(path: Path, spec: ScenarioSpec, experiment: Path,
            objectives: tuple[Slo, dict[str, Any]], inventory: Path | None) -> Scenario:
    t, a, r, to = spec.team, spec.alert, spec.response, spec.timeouts
    targets = {sev: dict(v) for sev, v in DEFAULT_TARGETS.items()}
    for sev, given in spec.targets.items():
        targets[sev].update(given)
    workload = {k: v for k, v in spec.workload.model_dump().items() if v is not None}
    return Scenario(
        path=path, name=spec.name, title=spec.title, description=spec.description,
        target=spec.target, workload=workload, experiment=experiment, service=spec.service,
        team=Team(name=t.name, model=t.model, oncall=tuple(t.oncall),
                  ic_rotation=tuple(t.ic_rotation), scribe=t.scribe, comms=t.comms,
                  responders=tuple(t.responders)),
        traffic_rate=spec.traffic.rate, traffic_timeout_s=spec.traffic.timeout,
        traffic_url=spec.traffic.url, sli=objectives[1], alertmanager=spec.alertmanager,
        slo=objectives[0],
        alert=Alert(name=a.name, for_s=a.for_, labels=dict(a.labels),
                    annotations=dict(a.annotations)),
        alerting=spec.alerting,
        response=Response(mode=r.mode, runbook=r.runbook, params=dict(r.params)),
        recovery_window_s=spec.recovery_window,
        evaluation_interval_s=spec.evaluation_interval,
        timeouts=Timeouts(steady=to.steady, detect=to.detect, mitigate=to.mitigate,
                          recover=to.recover),
        targets=targets, customer_facing=spec.customer_facing or spec.service,
        drill=spec.drill, inventory=inventory,
        replay=spec.replay.model_dump() if spec.replay else None,
        stop_when=spec.stop_when.model_dump(by_alias=False) if spec.stop_when else None)
