"""``gameday report``: what the game days (and real incidents) taught, across runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from gameday.cli.common import DAYS, Since, State, pass_state
from gameday.core.states import IncidentKind

KIND_CHOICES = ("gameday", "drill", "incident")  # insights.KINDS, without importing it


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if unit == "" else f"{value:.2f}{unit}"


def _dist(d: dict[str, Any], unit: str = "s") -> str:
    if not d["n"]:
        return "n=0"
    return f"p50 {_fmt(d['p50'], unit)} p90 {_fmt(d['p90'], unit)} n={d['n']}"


def _print(data: dict[str, Any]) -> None:
    echo = click.echo
    scope = {k: v for k, v in data["scope"].items() if v and k != "max_age_days"}
    counts = ", ".join(f"{k} {n}" for k, n in data["counts"].items())
    echo(f"gameday report ({', '.join(f'{k} {v}' for k, v in scope.items()) or 'all time'}): "
         f"{counts}")
    for kind, section in data["response"].items():
        if not section["overall"]["n"]:
            continue
        label = {"gameday": "GAME DAYS (timed from the injected fault)",
                 "drill": "DRILLS (people in the loop; timed from the injected fault)",
                 "incident": "INCIDENTS from alerts (no ground truth: no TTD, TTM, TTR)"
                 }.get(kind, kind.upper())
        echo(f"\n{label}")
        for name, d in section["overall"]["metrics"].items():
            echo(f"  {name:5} {_dist(d)}")
        first, shown_metrics = (("service", ("TTA", "TTE", "TTFC")) if kind == IncidentKind.INCIDENT
                                else ("scenario", ("TTD", "TTA", "TTM")))
        for dimension in (first, "team", "severity"):
            groups = section[f"by_{dimension}"]
            if len(groups) < 2 and dimension != first:
                continue
            echo(f"  by {dimension}:")
            for group, g in groups.items():
                m = g["metrics"]
                shown = "  ".join(f"{k} {_fmt(m[k]['p50'])}/{_fmt(m[k]['p90'])}"
                                  for k in shown_metrics if m[k]["n"])
                echo(f"    {group:36} n={g['n']:<5} p50/p90 {shown or '—'}")
    for kind, g in data["outcomes"].items():
        if not g["n"]:
            continue
        name = {"gameday": "GAME DAY", "drill": "DRILL"}.get(kind, kind.upper())
        echo(f"\n{name} SCORES  {_dist(g['score'], '')}; escalated "
             f"{g['escalations']['n']} of {g['n']}; contained by: "
             + ", ".join(f"{k} {v}" for k, v in g["contained_by"].items()))
        v = g["verdicts"]
        if v["recorded"]:
            counts = ", ".join(f"{k} {n}" for k, n in v["counts"].items())
            echo(f"  verdicts: pass rate {v['pass_rate']:.0%} of {v['recorded']} judged "
                 f"({counts})")
            if v["failed_checks"]:
                echo("  checks that failed most: " + ", ".join(
                    f"{k} {n}" for k, n in v["failed_checks"].items()))
        for e in g["escalations"]["latest"][:5]:
            echo(f"  escalated: #{e['incident_id']} {e['scenario']} (runbook {e['runbook']})")
    echo("\nSEVERITY (run at vs measured)")
    for kind, s in data["severity"].items():
        o = s["overall"]
        if o["n"]:
            share = "—" if o["too_low_share"] is None else f"{o['too_low_share']:.0%}"
            echo(f"  {kind:9} n={o['n']} accurate {o['accurate']} too low {o['too_low']} "
                 f"({share} of measured) too high {o['too_high']} unmeasured "
                 f"{o['unmeasured']}")
    echo(f"\nRUNBOOKS (stale after {data['scope']['max_age_days']:g} days)")
    for f in data["runbooks"]:
        seen = (f"verified by game day #{f['verified_by']}, {f['ago']}"
                if f["verified_by"] else "never verified")
        extra = []
        if f["failed_since_verified"]:
            extra.append(f"FAILED since (run #{f['last_failed_run']})")
        if f["ran_without_containing"]:
            extra.append(f"ran without containing in #{f['ran_without_containing']}")
        echo(f"  {f['status']:15} {f['runbook']:26} {seen}"
             + (f"; {'; '.join(extra)}" if extra else ""))
    if data["stale_alerts"]:
        echo("  alerts linking a runbook not verified lately: " + ", ".join(
            f"{a['alert']} -> {a['runbook']}" for a in data["stale_alerts"]))
    _print_trust(data["trust"], echo)
    _print_alerts(data["alerts"], echo)
    echo("\nACTION ITEMS")
    for kind, a in data["actions"].items():
        if a["total"]:
            rate = "—" if a["completion_rate"] is None else f"{a['completion_rate']:.0%}"
            oldest = ("—" if a["oldest_open_days"] is None
                      else f"{a['oldest_open_days']:.0f} days")
            echo(f"  {kind:9} {a['done']} of {a['total']} done ({rate}); open {a['open']}, "
                 f"overdue {a['overdue']}; oldest open {oldest}")
            for owner, n in a["overdue_by_owner"].items():
                echo(f"    overdue: {owner} {n}")


def _print_trust(trust: dict[str, Any], echo: Callable[[str], None]) -> None:
    policy = trust["policy"]
    echo(f"\nTRUST (automatic runs: require {policy['require']}, proof within "
         f"{policy['max_age_days']} days)")
    for t in trust["runbooks"]:
        if t["auto"] or t["level"] != "unproven":
            echo(f"  {t['level']:9} {t['runbook']:26} {t['why']}"
                 + ("" if t["auto"] else "  (not automatic)"))
    verb = "held back" if trust["held_now"] else "would be held under require = proven"
    for h in trust["held"]:
        echo(f"  {verb}: {h['alert']} -> {h['runbook']} ({h['level']})")
    real = trust["real"]
    if real["contained"]:
        echo(f"  real incidents contained: {real['contained']} of {real['incidents']}: "
             f"{real['by_proven_runbook']} by a proven runbook "
             f"({real['proven_share']:.0%}), {real['by_other_runbook']} by another runbook, "
             f"{real['by_people']} by people ({real['people_share']:.0%})")


@click.command()
@click.option("--since", type=Since(), metavar="AGE|DATE",
              help="Incidents opened since: 30d, 2w, 12h, or a date [default: all].")
@click.option("--service")
@click.option("--team", help="The team (an alert's `team` label).")
@click.option("--scenario")
@click.option("--kind", type=click.Choice(KIND_CHOICES),
              help="Game days (a scenario injected a fault), drills (a game day with "
                   "people responding) or incidents (opened by an alert).")
@click.option("--max-age", "max_age", type=DAYS, default=30,
              show_default=True, metavar="DAYS",
              help="A runbook not verified for longer is stale (whole days, at least 1, "
                   "as [automation] max_age_days).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--html", "html", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as one HTML file with its charts.")
@pass_state
def report(state: State, since: datetime | None, service: str | None, team: str | None,
           scenario: str | None, kind: str | None, max_age: int, as_json: bool,
           html: Path | None) -> None:
    """Response times (p50/p90 with n), severity accuracy, runbook freshness and action
    items across game days and real incidents, each kept apart."""
    from gameday.report import insights
    from gameday.runbooks.routing import rule_files
    from gameday.runbooks.runbook import discover

    if html:
        _writable(html)  # before any work: a report that cannot be written is exit 2
    scope = insights.Scope(since=since, service=service, team=team, scenario=scenario,
                           kind=kind, max_age_days=max_age)
    result = insights.build(state.store, scope,
                            runbooks=discover(state.settings.runbook_dirs),
                            rule_files=rule_files(state.settings.rules_dirs),
                            policy=state.settings.automation)
    if html:
        from gameday.report.page import render_html

        page = render_html(result)
        try:
            html.write_text(page)
        except OSError as exc:
            raise _unwritable(html, exc.strerror or str(exc)) from None
        click.echo(f"wrote {html}", err=as_json)
    if as_json:
        click.echo(insights.dumps(result))
    elif not html:
        _print(result.as_dict())


def _writable(html: Path) -> None:
    """That ``--html`` can be written: the check ``gameday run --junit`` makes
    (``verdict.check_junit_path``: its directory is made, a file can be created in it,
    it is not a directory), its error named for ``--html``."""
    from gameday.core.errors import ValidationError
    from gameday.game.verdict import check_junit_path

    try:
        check_junit_path(html)
    except ValidationError as exc:
        why = exc.message.rpartition(": ")[2]  # "cannot write the JUnit report P: WHY"
        raise _unwritable(html, why) from None


def _unwritable(html: Path, why: str) -> Exception:
    from gameday.core.errors import ValidationError

    return ValidationError(f"cannot write the HTML report {html}: {why}", field="--html")


def _print_alerts(alerts: list[dict[str, Any]], echo: Callable[[str], None]) -> None:
    if alerts:
        echo("\nALERTS (did they fire in game days and drills?)")
        for a in alerts:
            echo(f"  {a['status']:16} {a['alert']:30} fired {a['fired']} of "
                 f"{a['game_days']} (last: #{a['last']})")
