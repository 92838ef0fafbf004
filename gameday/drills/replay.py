"""A real incident replayed as a training drill (``gameday drill start --from-incident``).

A drill of a shipped scenario rehearses an outage someone imagined; this one rehearses
one that happened. From the incident's record it takes the alert (name, labels,
annotations), the service and its team, the severity it was run at and the one
measured, and what people asked on the way (stakeholders' notes, the updates each
audience was sent) as injects at the same offsets from the alert. The fault is chosen
from the fault registry for the symptom the alert saw (``SYMPTOMS``: replicas down,
errors, latency) and the target chosen; why is said, printed and recorded.

What the incident does not say (who is on call, the SLO, where the fault goes) comes
from the project's drill scenario for the same service on that target, so a replay
acts only where a drill of that scenario would. The result is an ordinary scenario
file under the project's state directory (``replays/``): ``gameday validate`` reads it,
the drill row points at it, and the usual drill start runs it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gameday.activities import faults
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.events import Kind
from gameday.core.policy import worst
from gameday.core.settings import Settings
from gameday.core.spec import DAY, IDENTIFIER, LINE, NAME, human_span, read_yaml
from gameday.drills.master import FIELD, drill_scenarios, replayable, start_drill
from gameday.runbooks.routing import rule_files, runbook_in_link
from gameday.scenarios.drill import SENDERS
from gameday.scenarios.scenario import SYMPTOMS, Scenario, as_run, load_scenario
from gameday.store import Store
from gameday.targets.sandbox.shop import load_shop

MACHINES = ("alertmanager", "gameday", "detector", "chaos", "game-master")
MAX_INJECTS = 50  # what a drill block holds
ANSWER_WITHIN_S = 180.0  # an update asked for is expected within this, as the shipped ones

# How the alert's SLI reads, most telling first: a latency objective, then capacity
# (replicas or targets down), then the share of requests failing.
SIGNS = (("latency", re.compile(r"latency|duration|histogram_quantile|p9\d|slow", re.I)),
         ("availability", re.compile(r"\bup\s*(\{[^}]*\})?\s*==\s*0|replica|unavailab|"
                                     r"availab|\bdown\b|crash", re.I)),
         ("errors", re.compile(r"error|5\.\.|5xx|fail|success", re.I)))
# Who a stakeholder is, from their name or words, among the senders a drill knows.
SENDER_WORDS = (("executive", re.compile(r"exec|\bvp\b|vp-|cto|ceo|director|leadership", re.I)),
                ("customer", re.compile(r"customer|client", re.I)),
                ("sales", re.compile(r"sales|account", re.I)),
                ("security", re.compile(r"security|secops", re.I)),
                ("vendor", re.compile(r"vendor|supplier", re.I)),
                ("support", re.compile(r"support|ticket|help ?desk", re.I)))
AUDIENCE_SENDER = {"executive": "executive", "customer": "customer", "internal": "support"}


@dataclass(frozen=True)
class Fault:
    """The fault a replay injects: the registry's activity, its actions and why."""

    key: str
    method: list[dict[str, Any]]
    rollbacks: list[dict[str, Any]]
    why: str
    experiment: Path | None = None  # a scenario's own experiment, reused as it is


@dataclass(frozen=True)
class Replay:
    """What a real incident's record gives a drill, and what the drill adds to it."""

    incident: int
    title: str
    alert: str
    labels: dict[str, str]
    annotations: dict[str, str]
    service: str
    declared: str | None
    measured: str | None
    symptom: str
    evidence: str
    base: Scenario
    fault: Fault
    injects: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    def summary(self) -> dict[str, Any]:
        return {"incident": self.incident, "alert": self.alert, "service": self.service,
                "team": self.labels.get("team") or self.base.team.name,
                "severity_declared": self.declared, "severity_measured": self.measured,
                "symptom": self.symptom, "evidence": self.evidence,
                "target": self.base.target, "base_scenario": str(self.base.path),
                "fault": self.fault.key, "why": self.fault.why,
                "injects": [i["name"] for i in self.injects], "notes": list(self.notes)}


# -- reading the incident -------------------------------------------------------------------
def plan(store: Store, settings: Settings, incident_id: int,
         target: str = "sandbox") -> Replay:
    """The drill a real incident makes on ``target``, or a refusal that names what is
    missing: the incident, its alert, a real (not rehearsed) one, a scenario to take
    the team from, a fault for its symptom."""
    row, timeline, alert = replayable(store, incident_id)
    name = str(alert["data"]["alertname"])
    labels = {str(k): str(v) for k, v in (alert["data"].get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in
                   (alert["data"].get("annotations") or {}).items()}
    service = row.get("service") or labels.get("service")
    if not service:
        raise ValidationError(f"incident {incident_id}'s alert {name} names no service (no "
                              "service label): a replay needs one to aim the fault at",
                              field=FIELD)
    symptom, evidence = symptom_of(name, labels, annotations, settings)
    if symptom is None:
        raise ValidationError(
            f"incident {incident_id}'s alert {name} shows no symptom a fault in the registry "
            f"produces: {evidence} says nothing of {', '.join(SYMPTOMS)} (replicas down, "
            "failing requests, slow ones)", field=FIELD)
    base = base_scenario(settings, service, name, target)
    declared, measured = severities(timeline)
    shaped = measured or declared
    fault = (sandbox_fault(base, service, symptom, shaped, labels.get("replica"))
             if base.target == "sandbox" else scenario_fault(base, symptom, settings))
    notes: list[str] = []
    injects = injects_from(timeline, alert, service, notes)
    return Replay(incident_id, str(row["title"]), name, labels, annotations, service,
                  declared, measured, symptom, evidence, base, fault, injects, notes)


def severities(timeline: Sequence[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """The severity the incident was declared at, and the worst one measured (when
    anybody measured it: a real alert seldom says)."""
    declared = next((e["data"].get("severity") for e in timeline
                     if e["kind"] == Kind.INCIDENT_DECLARED), None)
    measured = worst(e["data"].get("measured_severity") for e in timeline
                     if e["kind"] in (Kind.INCIDENT_DECLARED, Kind.SEVERITY_CHANGED))
    return declared, measured


def symptom_of(alert: str, labels: Mapping[str, str], annotations: Mapping[str, str],
               settings: Settings) -> tuple[str | None, str]:
    """The kind of impact the alert measures, and what says so: its ``sli`` label, else
    its rule's expression in the project's (or the built-in) alert rules, else its name
    and summary."""
    given = labels.get("sli", "").lower()
    if given in SYMPTOMS:
        return given, f"its sli label ({given})"
    expr = rule_expression(alert, settings)
    if expr is not None:
        found = _sign(expr[1])
        if found:
            return found, f"its rule in {expr[0]} ({' '.join(expr[1].split())[:120]})"
    words = " ".join((alert, annotations.get("summary", ""), annotations.get("description", "")))
    where = (f"its rule in {expr[0]} and " if expr else "") + "its name and summary"
    return _sign(_words(words)), where


def _words(text: str) -> str:
    """CamelCase alert names read as words (CheckoutLatencyBurn: checkout latency burn)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", text)


def _sign(text: str) -> str | None:
    return next((symptom for symptom, sign in SIGNS if sign.search(text)), None)


def rule_expression(alert: str, settings: Settings) -> tuple[str, str] | None:
    """The alert rule of that name (the project's rules, then the built-in ones): its
    file's name and its expression."""
    for path in rule_files(settings.rules_dirs):
        try:
            doc = read_yaml(path)
        except GamedayError:
            continue
        groups = doc.get("groups") if isinstance(doc, dict) else None
        for group in groups if isinstance(groups, list) else []:
            rules = group.get("rules") if isinstance(group, dict) else None
            for rule in rules if isinstance(rules, list) else []:
                if isinstance(rule, dict) and rule.get("alert") == alert:
                    return path.name, str(rule.get("expr", ""))
    return None


def base_scenario(settings: Settings, service: str, alert: str, target: str) -> Scenario:
    """The project's drill scenario the replay takes its team, SLO and place from: one on
    ``target`` for the same service, the one with the same alert first."""
    same = [sc for _, sc in drill_scenarios(settings)
            if sc.target == target and sc.service == service]
    if not same:
        offered = sorted({f"{sc.service} ({sc.target})" for _, sc in drill_scenarios(settings)})
        raise ValidationError(
            f"no {target} drill scenario for service {service} in scenarios/: a replay takes "
            "who is on call, the SLO and where the fault goes from one (drill scenarios "
            f"here: {', '.join(offered) or 'none'})", field="--target")
    same.sort(key=lambda sc: (sc.alert.name != alert, sc.name))
    return same[0]


# -- the fault ------------------------------------------------------------------------------
def _action(name: str, key: str, arguments: dict[str, Any]) -> dict[str, Any]:
    module, _, func = key.partition(":")
    return {"type": "action", "name": name,
            "provider": {"type": "python", "module": module, "func": func,
                         "arguments": arguments}}


def _declared(key: str, undo: str) -> faults.Fault:
    """The registry's declaration of ``key``, which must name ``undo`` among what undoes
    it: the registry, not this module, says what is a fault and how it is rolled back."""
    declared = faults.lookup(key)
    if declared is None or declared.probe or undo not in declared.rollback:
        raise GamedayError(f"the fault registry no longer declares {key} undone by {undo}")
    return declared


def sandbox_fault(base: Scenario, service: str, symptom: str, severity: str | None,
                  replica: str | None = None) -> Fault:
    """On the embedded sandbox: a registry fault that makes ``service`` show ``symptom``,
    sized to the severity the incident reached where the sandbox can, on the replica
    the alert names if it names one."""
    try:
        spec = load_shop().service(service)
    except GamedayError:
        known = ", ".join(load_shop().services)
        raise ValidationError(f"the sandbox has no service {service} (it has {known}): "
                              "replay it on a target that has", field="--target") from None
    sev1 = severity == "SEV-1"
    if symptom == "availability":
        key = "gameday.activities.sandbox:kill_replica"
        why = _declared(key, "gameday.activities.sandbox:restart_replica")
        named = int(replica) if replica and replica.isdigit() \
            and 1 <= int(replica) <= spec.replicas else None
        down = list(range(1, spec.replicas + 1)) if sev1 else [named or 1]
        method = [_action(f"kill-{service}-replica-{n}", key, {"service": service, "replica": n})
                  for n in down]
        rollbacks = [_action(f"restart-{service}-replicas-if-down",
                             "gameday.activities.sandbox:restart_replica",
                             {"service": service, "only_failed": True})]
        which = (f"replica {named}, the one the alert names," if named and not sev1
                 else f"{len(down)} of {service}'s {spec.replicas} replicas")
        reason = (f"the alert measures availability (replicas down): killing {which} takes "
                  f"that share of {service}'s capacity away"
                  f"{' (all of it, as the incident reached SEV-1)' if sev1 else ''}")
    elif symptom == "errors":
        key = "gameday.activities.sandbox:deploy_release"
        why = _declared(key, "gameday.activities.sandbox:rollback_release")
        bad = max(spec.releases, key=lambda r: r.error_ratio)
        if not bad.error_ratio:
            raise ValidationError(f"no fault in the registry makes the sandbox's {service} "
                                  "fail requests: none of its releases fails any",
                                  field=FIELD)
        method = [_action(f"deploy-{service}-{bad.version}", key,
                          {"service": service, "version": bad.version})]
        rollbacks = [_action(f"roll-{service}-back-unless-done",
                             "gameday.activities.sandbox:rollback_release", {"service": service})]
        reason = (f"the alert measures failing requests: {service} {bad.version} fails about "
                  f"{bad.error_ratio:.0%} of them ({bad.note or 'a bad release'})")
    else:
        key = "gameday.activities.sandbox:inject_latency"
        why = _declared(key, "gameday.activities.sandbox:remove_latency")
        serious = severity in ("SEV-1", "SEV-2")
        ms = int(base.slo.latency_p99_ms * (3 if serious else 1.5))
        method = [_action(f"slow-{service}-by-{ms}ms", key, {"service": service, "ms": ms})]
        rollbacks = [_action(f"{service}-latency-back-to-normal",
                             "gameday.activities.sandbox:remove_latency", {"service": service})]
        reason = (f"the alert measures latency: {ms} ms more on every {service} request puts "
                  f"its p99 past the {base.slo.latency_p99_ms:g} ms objective"
                  f"{' twice over (the incident was ' + str(severity) + ')' if serious else ''}")
    return Fault(why.key, method, rollbacks, reason)


def scenario_fault(base: Scenario, symptom: str, settings: Settings) -> Fault:
    """On a team's own cluster or service: the project's scenario for that service
    already says which registry fault acts there and how it is undone; it serves when
    its alert measures the same symptom."""
    theirs, _ = symptom_of(base.alert.name, base.alert.labels, base.alert.annotations, settings)
    raw = read_yaml(base.experiment)
    method = raw.get("method") if isinstance(raw, dict) else None
    keys = [f"{p.get('module')}:{p.get('func')}" for a in method or []
            if isinstance(a, dict) and isinstance(p := a.get("provider"), dict)
            and p.get("type") == "python"]
    declared = [d for d in (faults.lookup(k) for k in keys) if d is not None and not d.probe]
    if theirs != symptom or not declared:
        has = f"{', '.join(d.key for d in declared) or 'no registry fault'} ({theirs})"
        raise ValidationError(
            f"no fault in the registry produces {symptom} on {base.target} for "
            f"{base.service} here: its drill scenario {base.name} injects {has}",
            field=FIELD)
    chosen = declared[0]
    why = (f"the alert measures {symptom}, as {base.name}'s alert does; its experiment's "
           f"{chosen.key} acts where that scenario acts")
    return Fault(chosen.key, [], [], why, experiment=base.experiment)


# -- injects from what happened -------------------------------------------------------------
def injects_from(timeline: Sequence[Mapping[str, Any]], alert: Mapping[str, Any],
                 service: str, notes: list[str]) -> list[dict[str, Any]]:
    """The stakeholders' questions and the updates each audience was sent, at the same
    offsets from the alert. Pages are left out: the drill pages its own roster."""
    people = {e["data"].get("person") for e in timeline
              if e["kind"] in (Kind.PAGE_SENT, Kind.ROLE_ASSIGNED)}
    people |= {e["actor"] for e in timeline if e["kind"] == Kind.INCIDENT_ACKNOWLEDGED}
    t0 = alert["at_monotonic_ns"]
    out: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for e in timeline:
        at = round(max(0, e["at_monotonic_ns"] - t0) / 1e9, 1)
        if at > DAY:
            break  # a drill's clock runs a day at most
        if e["kind"] == Kind.COMMS_POSTED:
            audience = str(e["data"].get("audience") or "internal")
            sender = AUDIENCE_SENDER.get(audience, "support")
            n = counts[f"update {audience}"] = counts.get(f"update {audience}", 0) + 1
            out.append({"name": f"{audience}-update-{n}", "at": at,
                        "after": str(Kind.ALERT_FIRED), "from": sender,
                        "message": _line(f"{sender.capitalize()} asks for an update on "
                                         f"{service} (on the real incident the {audience} "
                                         f"update went out {_after(at)})"),
                        "expect": {"event": str(Kind.COMMS_POSTED), "audience": audience,
                                   "within": ANSWER_WITHIN_S, "role": "comms_lead"}})
        elif e["kind"] == Kind.NOTE_ADDED and e["actor"] not in people \
                and e["actor"] not in MACHINES:
            sender = _sender(f"{e['actor']} {e['data'].get('text', '')}")
            n = counts[f"asks {sender}"] = counts.get(f"asks {sender}", 0) + 1
            out.append({"name": f"{sender}-asks-{n}", "at": at,
                        "after": str(Kind.ALERT_FIRED), "from": sender,
                        "message": _line(str(e["data"].get("text") or "Any news?"))})
    if len(out) > MAX_INJECTS:
        notes.append(f"{len(out) - MAX_INJECTS} later questions and updates left out (a "
                     f"drill holds {MAX_INJECTS} injects)")
    if any(e["kind"] == Kind.PAGE_SENT for e in timeline):
        notes.append("its pages are not replayed: the drill pages the team's own roster")
    return out[:MAX_INJECTS]


def _after(seconds: float) -> str:
    return f"{human_span(seconds)} after the alert" if seconds else "with the alert"


def _sender(text: str) -> str:
    found = next((sender for sender, words in SENDER_WORDS if words.search(text)), "support")
    assert found in SENDERS
    return found


def _line(text: str) -> str:
    """One line a drill shows, within a scenario's limits."""
    said = " ".join(text.split())[:500]
    return said if re.fullmatch(LINE, said) else re.sub(r"[\x00-\x1f\x7f]", " ", said)


# -- the scenario file ----------------------------------------------------------------------
def _alert(replay: Replay) -> dict[str, Any]:
    """The real alert as a scenario fires it: its labels and annotations, a runbook link
    that is not one of gameday's one-click pages replaced by the scenario's own."""
    labels = {k: v for k, v in replay.labels.items()
              if re.fullmatch(IDENTIFIER, k) and k != "alertname"}
    annotations = {k: v for k, v in replay.annotations.items() if re.fullmatch(IDENTIFIER, k)}
    url = annotations.get("runbook_url")
    try:
        linked = runbook_in_link(url) if url else None
    except ValidationError:
        linked = None
    if url and linked is None:
        own = replay.base.alert.annotations.get("runbook_url")
        annotations.pop("runbook_url")
        if own:
            annotations["runbook_url"] = own
        replay.notes.append(f"its runbook_url ({url[:80]}) is not a gameday runbook: the "
                            f"drill links {own or 'none'}")
    return {"name": replay.alert, "for": human_span(replay.base.alert.for_s) or "0s",
            "labels": labels, "annotations": annotations}


def documents(replay: Replay) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The scenario (its base's, as run, with the incident's alert, injects and the
    chosen fault) and, on the sandbox, the experiment the fault is written into."""
    base = replay.base
    doc = yaml.safe_load(as_run(base))
    doc.update({
        "name": f"replay-incident-{replay.incident}",
        "title": _line(f"Rehearsal of incident #{replay.incident}: {replay.title}"),
        "description": (f"A training drill replaying real incident #{replay.incident} "
                        f"({replay.alert} on {replay.service}, run at "
                        f"{replay.declared or 'no severity'}, measured "
                        f"{replay.measured or 'never'}). Fault: "
                        f"{replay.fault.key}, because {replay.fault.why}. Made by gameday "
                        f"drill start --from-incident {replay.incident} from {base.path.name}."),
        "service": replay.service,
        "alert": _alert(replay),
        "response": {**(doc.get("response") or {}), "mode": "drill"},
        "replay": {"incident": replay.incident, "alert": replay.alert,
                   "severity_declared": replay.declared, "severity_measured": replay.measured,
                   "symptom": replay.symptom, "fault": replay.fault.key,
                   "why": _line(replay.fault.why)},
    })
    team = replay.labels.get("team")
    if team and NAME.fullmatch(team):
        doc["team"] = {**doc["team"], "name": team}
    # the incident's own injects; the scenario's hints are about its own fault, not this one
    doc["drill"] = {**(doc.get("drill") or {}), "injects": replay.injects, "hints": []}
    if base.target == "sandbox":
        doc["alerting"] = "builtin"  # the detector fires the incident's own alert
    if replay.fault.experiment is not None:
        return doc, None
    slo = base.slo
    experiment = {
        "version": "1.0.0",
        "title": f"Rehearsal of incident #{replay.incident}: {replay.fault.key}",
        "description": replay.fault.why,
        "tags": ["gameday", "replay", base.target],
        "steady-state-hypothesis": {"title": f"{replay.service} meets its objective", "probes": [
            {"type": "probe", "name": f"{replay.service}-slo-met", "tolerance": True,
             "provider": {"type": "python", "module": "gameday.activities.sandbox",
                          "func": "slo_met",
                          "arguments": {"success_ratio": slo.success_ratio,
                                        "latency_p99_ms": slo.latency_p99_ms,
                                        "window_s": slo.window_s}}}]},
        "method": replay.fault.method,
        "rollbacks": replay.fault.rollbacks,
    }
    return doc, experiment


def write(settings: Settings, replay: Replay) -> Path:
    """The replay as scenario files under ``STATE/replays/``, named by what they say (a
    replay made again of an unchanged incident is the same file, and a file a drill
    points at never changes), then loaded as any scenario is."""
    doc, experiment = documents(replay)
    digest = hashlib.sha256(json.dumps([doc, experiment], sort_keys=True, default=str)
                            .encode()).hexdigest()[:10]
    folder = settings.state_dir / "replays"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"incident-{replay.incident}-{digest}"
    if experiment is not None:
        (folder / f"{stem}.experiment.yaml").write_text(
            yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True))
        doc["experiment"] = f"{stem}.experiment.yaml"
    path = folder / f"{stem}.yaml"
    header = (f"# A rehearsal of real incident #{replay.incident}, made by gameday drill start "
              f"--from-incident {replay.incident}.\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    load_scenario(path)  # what the drill will load, refused here if it would not
    return path


def start_replay(store: Store, settings: Settings, incident_id: int, *, target: str,
                 game_master: str, difficulty: str = "normal",
                 base_url: str | None = None) -> dict[str, Any]:
    """Plan the replay, write it, and start it as any drill starts."""
    replay = plan(store, settings, incident_id, target)
    path = write(settings, replay)
    started = start_drill(store, settings, path, game_master=game_master,
                          difficulty=difficulty, base_url=base_url)
    return {**started, "replay": replay.summary()}
