"""Scenario files: load, validate, and freeze them.

A scenario (``scenarios/*.yaml``) ties a target, a Chaos Toolkit experiment, the SLO
and alert, the team's roster and response model, response targets and timeouts
together. Raw YAML stops here: everything after this module gets frozen dataclasses,
and every error names the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gameday.errors import ValidationError

TARGETS = ("sandbox", "kind", "kwok")
MODELS = ("centralized", "distributed", "hybrid")
MODES = ("auto", "drill", "none")
ALERTING = ("builtin", "prometheus")
SEVERITIES = ("SEV-1", "SEV-2", "SEV-3", "SEV-4")
TARGET_KEYS = ("ack", "engage_ic", "first_comms", "mitigate", "resolve", "update_every")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")

# Defaults from the design: SEV-1 ack, IC engaged and first message within 5 min,
# updates every 20 min; SEV-2 ack within 15 min. Seconds.
DEFAULT_TARGETS: dict[str, dict[str, float]] = {
    "SEV-1": {"ack": 300, "engage_ic": 300, "first_comms": 300, "update_every": 1200},
    "SEV-2": {"ack": 900, "engage_ic": 900, "first_comms": 900, "update_every": 1800},
    "SEV-3": {"ack": 1800},
    "SEV-4": {"ack": 86400},
}


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

    def target_for(self, severity: str) -> dict[str, float]:
        return self.targets.get(severity, {})


class _Reader:
    """Reads fields out of a raw mapping, naming the file and dotted field on error."""

    def __init__(self, file: Path, data: Any, prefix: str = ""):
        self.file, self.data, self.prefix = file, data, prefix
        if not isinstance(data, dict):
            self.fail(prefix.rstrip(".") or "(top level)", "must be a mapping")

    def fail(self, field_name: str, message: str) -> None:
        raise ValidationError(message, file=str(self.file), field=field_name)

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def sub(self, key: str, required: bool = True) -> _Reader:
        if key not in self.data:
            if required:
                self.fail(self.name(key), "is required")
            return _Reader(self.file, {}, f"{self.name(key)}.")
        return _Reader(self.file, self.data[key], f"{self.name(key)}.")

    def str(self, key: str, default: Any = ..., choices: tuple[str, ...] | None = None,
            pattern: re.Pattern | None = None) -> Any:
        value = self.data.get(key, default)
        if value is ...:
            self.fail(self.name(key), "is required")
        if value is None and default is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(self.name(key), "must be a non-empty string")
        if choices and value not in choices:
            self.fail(self.name(key), f"must be one of {', '.join(choices)}, not {value!r}")
        if pattern and not pattern.match(value):
            self.fail(self.name(key), f"{value!r} must match {pattern.pattern}")
        return value

    def names(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(self.name(key), "must be a list of names")
        if required and not value:
            self.fail(self.name(key), "needs at least one name")
        return tuple(value)

    def number(self, key: str, default: Any = ..., low: float = 0.0,
               high: float = float("inf")) -> float:
        value = self.data.get(key, default)
        if value is ...:
            self.fail(self.name(key), "is required")
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not low <= value <= high:
            self.fail(self.name(key), f"must be a number between {low:g} and {high:g}, "
                                      f"not {value!r}")
        return float(value)

    def duration(self, key: str, default: Any = ...) -> float:
        value = self.data.get(key, default)
        if value is ...:
            self.fail(self.name(key), "is required")
        seconds = parse_duration(value)
        if seconds is None:
            self.fail(self.name(key), f"must be a duration like 500ms, 2s or 5m, not {value!r}")
        return seconds

    def mapping(self, key: str) -> dict[str, str]:
        value = self.data.get(key, {})
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()):
            self.fail(self.name(key), "must be a mapping of names to strings")
        return {k: str(v) for k, v in value.items()}


def parse_duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = DURATION.match(value.strip())
    if not m:
        return None
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]
    return float(m.group(1)) * scale


def load_scenario(path: str | Path, *, check_experiment: bool = True) -> Scenario:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ValidationError("no such file", file=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise ValidationError(f"not valid YAML: {getattr(exc, 'problem', exc)}",
                              file=str(path), field=where) from None
    r = _Reader(path, raw)
    known = {"name", "title", "description", "target", "experiment", "service", "team",
             "traffic", "slo", "alert", "alerting", "response", "recovery_window", "workload",
             "evaluation_interval", "timeouts", "targets"}
    for key in raw:
        if key not in known:
            r.fail(str(key), f"unknown field (expected one of {', '.join(sorted(known))})")

    experiment = path.parent / r.str("experiment")
    if check_experiment and not experiment.exists():
        r.fail("experiment", f"no such file: {experiment}")

    t = r.sub("team")
    team = Team(name=t.str("name", pattern=NAME), model=t.str("model", "hybrid", MODELS),
                oncall=t.names("oncall", required=True),
                ic_rotation=t.names("ic_rotation", required=True),
                scribe=t.str("scribe", None), comms=t.str("comms", None),
                responders=t.names("responders"))

    tr = r.sub("traffic", required=False)
    s = r.sub("slo")
    slo = Slo(success_ratio=s.number("success_ratio", low=0.5, high=1.0),
              latency_p99_ms=s.number("latency_p99_ms", low=1),
              window_s=s.duration("window", "2s"))
    a = r.sub("alert")
    alert = Alert(name=a.str("name", pattern=re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")),
                  for_s=a.duration("for", "0s"), labels=a.mapping("labels"),
                  annotations=a.mapping("annotations"))
    rs = r.sub("response", required=False)
    response = Response(mode=rs.str("mode", "auto", MODES),
                        runbook=rs.str("runbook", None, pattern=NAME),
                        params=rs.mapping("params"))
    to = r.sub("timeouts", required=False)
    timeouts = Timeouts(steady=to.duration("steady", 15), detect=to.duration("detect", 20),
                        mitigate=to.duration("mitigate", 20), recover=to.duration("recover", 20))

    targets = {sev: dict(v) for sev, v in DEFAULT_TARGETS.items()}
    tg = r.sub("targets", required=False)
    for sev in tg.data:
        if sev not in SEVERITIES:
            tg.fail(tg.name(str(sev)), f"must be one of {', '.join(SEVERITIES)}")
        sr = tg.sub(sev)
        for key in sr.data:
            if key not in TARGET_KEYS:
                sr.fail(sr.name(key), f"unknown target (expected {', '.join(TARGET_KEYS)})")
            targets[sev][key] = sr.duration(key)

    target = r.str("target", "sandbox", TARGETS)
    workload = r.mapping("workload")
    if target != "sandbox":
        w = r.sub("workload")
        w.str("namespace", pattern=NAME)
        w.str("deployment", pattern=NAME)
    interval = r.duration("evaluation_interval", "0.25s")
    if not 0.01 <= interval <= 0.25:
        r.fail("evaluation_interval", "must be between 10ms and 250ms")
    return Scenario(
        path=path, name=r.str("name", pattern=NAME), title=r.str("title"),
        description=r.str("description", ""), target=target, workload=workload,
        experiment=experiment, service=r.str("service", pattern=NAME), team=team,
        traffic_rate=tr.number("rate", 40, low=1, high=500),
        traffic_timeout_s=tr.duration("timeout", "3s"), slo=slo, alert=alert,
        alerting=r.str("alerting", "builtin", ALERTING),
        response=response, recovery_window_s=r.duration("recovery_window", "2s"),
        evaluation_interval_s=interval,
        timeouts=timeouts, targets=targets)
