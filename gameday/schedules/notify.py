"""A schedule's notifications: a JSON summary POSTed to its webhook when its game day
starts, ends or is skipped, or a Slack-compatible ``{"text": ...}`` body.

Delivered with ``requests`` and urllib3's ``Retry`` (three retries with backoff on
connection errors, 429 and 5xx). A notification that cannot be delivered is reported
and never stops a game day. Links to the review point at ``GAMEDAY_URL`` (where
``gameday serve`` is reachable) when it is set, else at the review file.
"""

from __future__ import annotations

from typing import Any

from gameday.core.settings import current
from gameday.schedules.schedule import Schedule
from gameday.store.rows import ScheduleRunRow

TIMEOUT_S = 5.0
RETRIES = 3


def summary(schedule: Schedule, run: ScheduleRunRow, event: str) -> dict[str, Any]:
    """What a notification says: ``event`` is started, finished or skipped."""
    result = run.get("summary") or {}
    metrics = result.get("metrics") or {}
    given = current()
    base = given.url if given.url_given else ""
    review = None
    if run.get("incident_id") and base:
        review = f"{base}/incidents/{run['incident_id']}/review"
    elif result.get("review"):
        review = str(result["review"]).removesuffix(".md") + ".html"
    return {"event": event, "schedule": schedule.name, "scenario": schedule.scenario,
            "scheduled_run": run["id"], "due_at": run["due_at"], "status": run["status"],
            "reason": run.get("reason"), "incident_id": run.get("incident_id"),
            "score": run.get("score"), "ttd_s": metrics.get("TTD"),
            "ttm_s": metrics.get("TTM"), "review": review}


def slack_text(body: dict[str, Any]) -> str:
    head = f"Game day {body['schedule']} ({body['scenario']}): {body['event']}"
    if body["event"] == "skipped":
        return f"{head}: {body['reason']}"
    if body["event"] == "started":
        return f"{head}, incident #{body['incident_id']}"
    parts = [f"{head}: {body['status']}"]
    if body["score"] is not None:
        parts.append(f"score {body['score']:g}/100")
    for name in ("ttd_s", "ttm_s"):
        if body[name] is not None:
            parts.append(f"{name[:3].upper()} {body[name]:.1f}s")
    if body["review"]:
        parts.append(f"review: {body['review']}")
    return ", ".join(parts)


def send(schedule: Schedule, body: dict[str, Any],
         say: Any = None) -> bool:
    """POST ``body`` to the schedule's webhook, if it has one; whether it arrived."""
    if not schedule.notify_url:
        return False
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    payload = {"text": slack_text(body)} if schedule.notify_format == "slack" else body
    retry = Retry(total=RETRIES, backoff_factor=0.3, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=frozenset({"POST"}), raise_on_status=False)
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        session.mount("https://", HTTPAdapter(max_retries=retry))
        try:
            response = session.post(schedule.notify_url, json=payload, timeout=TIMEOUT_S)
            ok = response.status_code < 300
            problem = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            ok, problem = False, type(exc).__name__
    if not ok and say:
        say(f"schedule {schedule.name}: the {body['event']} notification was not delivered "
            f"({problem})")
    return ok
