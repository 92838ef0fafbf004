"""Automation earned by proof: whether an automatic runbook may run by itself.

A runbook's trust is read from what game days and real runs did with it
(``freshness``):

- *proven*: a game day verified it (its run succeeded and contained the fault) within
  the policy's age, on the same kind of target as the alert's when the policy asks for
  that, and nothing since made it suspect;
- *suspect*: since its last verification (or ever, if it has none) a run of it failed,
  or a game day ran it fine without containing the fault;
- *unproven*: anything else (never verified, verified too long ago, or only on another
  kind of target).

With ``[automation] require = "proven"`` an ``auto`` runbook that is not proven does
not run by itself from a real alert: the run waits for one click (four eyes when it is
destructive), and the incident's timeline, the audit log and the one-click page say
why. Rehearsals are never held: they are how a runbook earns its proof.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from gameday.core.events import Kind
from gameday.core.settings import Automation as Automation  # the policy, for the report
from gameday.core.settings import Settings
from gameday.core.states import IncidentKind, IncidentState, RunStatus
from gameday.report.facts import Table
from gameday.report.freshness import Freshness, runbook_freshness, runbook_of_url
from gameday.runs.intake import Hold
from gameday.store import Connection, Store

PROVEN, UNPROVEN, SUSPECT = "proven", "unproven", "suspect"
CONTAINED = (IncidentState.MITIGATED.value, IncidentState.RESOLVED.value,
             IncidentState.REVIEWED.value)
# the kinds of target a game day's ``target.ready`` names, as an alert's target says them
KIND_OF_TARGET = {"sandbox": "sandbox", "kind": "kubernetes", "kwok": "kubernetes",
                  "kubernetes": "kubernetes", "service": "service"}


@dataclass(frozen=True)
class Trust:
    """One runbook's standing, and the sentence that explains it."""

    runbook: str
    level: str                      # proven | unproven | suspect
    why: str                        # what the page and the timeline say
    verified_by: int | None = None  # the game day (incident) that last proved it
    verified_at: str | None = None
    verified_on: str | None = None  # the kind of target it was proven on
    verified_version: str | None = None  # the runbook's version that game day ran
    suspect_run: int | None = None       # the run that failed since
    suspect_gameday: int | None = None   # the game day that ran it without containing

    @property
    def proven(self) -> bool:
        return self.level == PROVEN

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def restore(self, scenarios: list[str] | None = None) -> str:
        """What would make it proven (again): a game day that exercises it, offered as
        the command that schedules one with the first of ``scenarios`` (the project's
        scenarios whose alert links it, ``exercising``)."""
        if self.proven:
            return "nothing: it is proven"
        if not scenarios:
            return (f"a game day that runs {self.runbook} and sees it contain the fault; "
                    "no scenario here links it yet (its alert's runbook_url)")
        return (f"a game day that runs it and sees it contain the fault: gameday schedule "
                f"add verify-{self.runbook} {scenarios[0]} --cron '0 10 * * 1'")


def exercising(runbook: str, scenario_dirs: Iterable[Path], root: Path) -> list[str]:
    """The scenarios (paths as the project names them) whose alert links ``runbook``:
    a game day of one of them is how it earns its proof."""
    return linking(scenario_dirs, root).get(runbook, [])


def linking(scenario_dirs: Iterable[Path], root: Path) -> dict[str, list[str]]:
    """Each runbook the scenarios' alerts link (``runbook_url``), and those scenarios:
    every scenario file read once, however many runbooks are asked about."""
    found: dict[str, list[str]] = {}
    for folder in scenario_dirs:
        for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            try:
                doc = yaml.safe_load(path.read_text()) or {}
                url = ((doc.get("alert") or {}).get("annotations") or {}).get("runbook_url")
            except (OSError, yaml.YAMLError, AttributeError):
                continue
            name = runbook_of_url(url) if isinstance(url, str) else None
            if name:
                try:
                    found.setdefault(name, []).append(str(path.resolve().relative_to(root)))
                except ValueError:
                    found.setdefault(name, []).append(str(path))
    return found


def standing(store: Store, settings: Settings, runbooks: Iterable[Any]
             ) -> dict[str, tuple[Trust, str]]:
    """Each runbook's trust under the project's policy, and what would restore it (a
    game day of a project scenario that links it): ``runbook list`` and its page."""
    links = linking([settings.root / "scenarios"], settings.root)
    out = {}
    for rb in runbooks:
        trust = runbook_trust(store, rb.name, settings.automation, version=rb.version)
        out[rb.name] = (trust, trust.restore(links.get(rb.name)))
    return out


@dataclass(frozen=True)
class Proof:
    """What the game day that last verified a runbook ran: on which kind of target
    (its ``target.ready``), and which version of the runbook (its first run for real;
    None when it was recorded before runs kept one)."""

    on: str | None = None
    version: str | None = None


def judge(fresh: Freshness, policy: Automation, *, proof: Proof = Proof(),
          wanted_on: str | None = None, version: str | None = None) -> Trust:
    """``fresh``'s runbook against ``policy``; ``proof``: what its last verification
    ran; ``wanted_on``: the kind of target the alert is about (None: any); ``version``:
    the runbook as it is now (None: not compared)."""
    verified_on = proof.on
    doubts = _doubts(fresh)
    gaps = _gaps(fresh, policy, verified_on, wanted_on) + _changed(fresh, proof, version)
    if doubts:
        level, why = SUSPECT, "; ".join([*gaps, *doubts])
    elif gaps:
        level, why = UNPROVEN, "; ".join(gaps)
    else:
        level = PROVEN
        why = f"proven by game day #{fresh.verified_by}, {fresh.ago}" + (
            f" on {verified_on}" if verified_on else "")
    return Trust(runbook=fresh.runbook, level=level, why=why,
                 verified_by=fresh.verified_by, verified_at=fresh.verified_at,
                 verified_on=verified_on, verified_version=proof.version,
                 suspect_run=fresh.last_failed_run if fresh.failed_since_verified else None,
                 suspect_gameday=_ran_without_containing(fresh))


def _gaps(fresh: Freshness, policy: Automation, verified_on: str | None,
          wanted_on: str | None) -> list[str]:
    """What its proof lacks: none, too old, or from another kind of target."""
    if fresh.verified_by is None:
        return ["never verified by a game day"]
    days = fresh.verified_days_ago or 0.0
    out = []
    if days > policy.max_age_days:
        out.append(f"not verified for {days:.0f} days (the policy allows "
                   f"{policy.max_age_days})")
    if policy.same_target and wanted_on and verified_on and verified_on != wanted_on:
        out.append(f"proven on {verified_on} only, and this alert is about a "
                   f"{wanted_on} target")
    return out


def _changed(fresh: Freshness, proof: Proof, version: str | None) -> list[str]:
    """A proof holds for the playbook that ran: one changed since (or proven before
    runs kept their version) is not proven until a game day runs it as it is now."""
    if fresh.verified_by is None or version is None or proof.version == version:
        return []
    if proof.version is None:
        return [f"game day #{fresh.verified_by} proved it before gameday kept which version "
                "of a runbook ran"]
    return [f"changed since game day #{fresh.verified_by} proved it (version "
            f"{proof.version} then, {version} now)"]


def _doubts(fresh: Freshness) -> list[str]:
    out = []
    if fresh.failed_since_verified:
        out.append(f"its last failed run (#{fresh.last_failed_run}) came after its last "
                   "proof" if fresh.verified_by else
                   f"run #{fresh.last_failed_run} of it failed")
    wrong = _ran_without_containing(fresh)
    if wrong is not None:
        out.append(f"last game day #{wrong} ran it without containing the fault")
    return out


def _ran_without_containing(fresh: Freshness) -> int | None:
    """The game day, opened after its last verification, where it ran fine but did
    not contain the fault."""
    wrong, at = fresh.ran_without_containing, fresh.ran_without_containing_at
    if wrong is None or (fresh.verified_at is not None and at is not None
                         and at < fresh.verified_at):
        return None
    return wrong


def runbook_trust(store: Store, name: str, policy: Automation, *,
                  version: str | None = None, wanted_on: str | None = None,
                  now: datetime | None = None) -> Trust:
    """One runbook's trust, from its own runs and game days; ``version``: the runbook
    as it is now (``Runbook.version``), which its proof must have run."""
    fresh = runbook_freshness(store, name, max_age_days=policy.max_age_days, now=now)
    proofs = _proofs(store.reader(), [fresh.verified_by] if fresh.verified_by else [])
    return judge(fresh, policy, proof=proofs.get(fresh.verified_by or 0, Proof()),
                 wanted_on=wanted_on, version=version)


def hold_for(store: Store, policy: Automation | None) -> Hold | None:
    """``holder`` when the policy asks for proof, else None: nothing is held."""
    return holder(store, policy) if policy and policy.needs_proof else None


def holder(store: Store, policy: Automation) -> Hold:
    """The intake's question (``runs.intake.Intake``'s ``hold``): why an automatic
    run of runbook NAME for an alert about a TARGET kind (None: gameday's own world)
    must wait for a person, or None when it may run by itself."""
    def hold(name: str, version: str, target_kind: str | None) -> str | None:
        trust = runbook_trust(store, name, policy, version=version, wanted_on=target_kind)
        return None if trust.proven else trust.why
    return hold


# -- the report's trust ladder ------------------------------------------------------------------
def ladder(db: Connection, fresh: Sequence[Freshness], runbooks: Sequence[Any],
           policy: Automation, t: Table) -> dict[str, Any]:
    """Per runbook, proven / unproven / suspect with its dates; the alerts whose
    automatic runbook is held back (or would be, under ``require = "proven"``); and how
    the real incidents in scope were contained: by a runbook proven now, by another
    runbook, or by people."""
    proofs = _proofs(db, [f.verified_by for f in fresh if f.verified_by])
    auto = {rb.name for rb in runbooks if getattr(rb, "auto", False)}
    versions = {rb.name: getattr(rb, "version", None) or None for rb in runbooks}
    trusts = {f.runbook: judge(f, policy, proof=proofs.get(f.verified_by or 0, Proof()),
                               version=versions.get(f.runbook)) for f in fresh}
    rows = [tr.as_dict() | {"auto": tr.runbook in auto} for tr in trusts.values()]
    held = [{"alert": alert, "runbook": f.runbook, "level": trusts[f.runbook].level,
             "why": trusts[f.runbook].why}
            for f in fresh if f.runbook in auto and not trusts[f.runbook].proven
            for alert in f.alerts]
    return {"policy": {"require": policy.require, "max_age_days": policy.max_age_days,
                       "same_target": policy.same_target},
            "held_now": policy.needs_proof, "runbooks": rows, "held": held,
            "real": _containment(db, t, trusts)}


def _containment(db: Connection, t: Table, trusts: Mapping[str, Trust]) -> dict[str, Any]:
    """How the real incidents in scope were contained: one that ended (mitigated,
    resolved, reviewed) after its runbook ran successfully (the facts' first run) was
    contained by that runbook; one without, by people."""
    marks = ", ".join("?" for _ in CONTAINED)
    ended = {i for (i,) in db.tuples(  # a real incident has no scenario
        f"SELECT id FROM incidents WHERE scenario IS NULL AND state IN ({marks})",
        CONTAINED)}
    real = {code for code, f in enumerate(t.facets) if f.kind == IncidentKind.INCIDENT}
    by: Counter[str] = Counter()
    for incident, code in zip(t.ids, t.code, strict=True):
        if code not in real:
            continue
        by["incidents"] += 1
        if incident not in ended:
            continue
        f = t.facets[code]
        if f.runbook and f.runbook_status == RunStatus.SUCCESSFUL:
            by["proven" if f.runbook in trusts and trusts[f.runbook].proven else "other"] += 1
        else:
            by["people"] += 1
    contained = by["proven"] + by["other"] + by["people"]
    return {"incidents": by["incidents"], "contained": contained,
            "by_proven_runbook": by["proven"], "by_other_runbook": by["other"],
            "by_people": by["people"],
            "proven_share": round(by["proven"] / contained, 3) if contained else None,
            "people_share": round(by["people"] / contained, 3) if contained else None}


def _proofs(db: Connection, incidents: Sequence[int]) -> dict[int, Proof]:
    """What each game day ran (``Proof``), in one query: the kind of target its
    ``target.ready`` names, and the version its first run for real (not ``--check``,
    as the facts' ``rb_started``) recorded."""
    if not incidents:
        return {}
    marks = ", ".join("?" for _ in incidents)
    on: dict[int, str] = {}
    version: dict[int, str | None] = {}
    for r in db.execute(f"SELECT incident_id, kind, data_json FROM events WHERE kind IN (?, ?)"
                        f" AND incident_id IN ({marks}) ORDER BY incident_id, seq",
                        (Kind.TARGET_READY.value, Kind.RUNBOOK_STARTED.value, *incidents)):
        data, incident = json.loads(r["data_json"]), r["incident_id"]
        if r["kind"] == Kind.TARGET_READY:
            kind = KIND_OF_TARGET.get(str(data.get("target")))
            if kind:
                on[incident] = kind
        elif not data.get("check") and incident not in version:
            version[incident] = data.get("version")
    return {i: Proof(on=on.get(i), version=version.get(i)) for i in {*on, *version}}
