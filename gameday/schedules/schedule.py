"""Scheduled game days: when a schedule is due, and when no game day may run.

A schedule runs one scenario on a cron expression in a time zone (``croniter``, DST
handled: a 02:30 that does not exist runs at 03:00) or every fixed interval from the
moment it was added. Each due moment is delayed by a jitter that every process
computes the same way (a hash of the schedule and the moment), so several
``gameday serve`` processes agree on when it starts, and the store lets exactly one of
them claim it. A moment missed (no ``gameday serve`` was running) is started late
only within ``max_late``; older ones are skipped, on the record.

A cron that matches no date (``0 3 30 2 *``: 30 February) is refused when the schedule
is made, and so is a jitter not shorter than the time between its moments. A stored
schedule whose next moment cannot be computed anyway (a store made before those checks,
or a time zone the system's tzdata no longer has) raises ``NeverFires``, saying why:
``schedule list`` shows it, and the scheduler reports it and runs the others.

Blackouts are windows, read in the schedule's time zone, when its game days are
skipped with the reason recorded::

    2026-12-18..2027-01-04      dates (inclusive): the release freeze
    2026-12-24                  one date
    sat,sun                     weekdays
    mon-fri 00:00-07:00         hours on those days (22:00-02:00 wraps past midnight)
    09:00-10:00                 hours, every day
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gameday.core import clock
from gameday.core.errors import GamedayError, ValidationError
from gameday.core.spec import NAME, human_span, parse_duration
from gameday.store.rows import ScheduleRow

WHERE = "schedule"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_EVERY_S = 1.0
MAX_SPAN_S = 366 * 86_400.0
DEFAULT_MAX_LATE_S = 600.0
DATE_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?$")
HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
# How far croniter looks for a cron's next moment: the rarest cron that fires at all
# (the fifth Friday of February, i.e. 29 February on a Friday) goes 40 years without.
CRON_HORIZON_YEARS = 50
# How many of a cron's moments, within how long, its jitter is measured against.
GAP_FIRINGS = 1000
GAP_SPAN = timedelta(days=366)  # a year: both daylight-saving changes, every month


class NeverFires(GamedayError):
    """A schedule whose next moment cannot be computed, and ``why``."""

    def __init__(self, schedule: str, why: str):
        self.schedule, self.why = schedule, why
        super().__init__(f"schedule {schedule} never fires: {why}")


@dataclass(frozen=True)
class Blackout:
    text: str
    first: date | None = None
    last: date | None = None
    weekdays: frozenset[int] = frozenset()
    hours: tuple[int, int] | None = None  # minutes of the day: [start, end), end <= 1440

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` (already in the schedule's time zone) falls inside."""
        if self.first is not None:
            return self.first <= moment.date() <= (self.last or self.first)
        if self.hours is None:
            return moment.weekday() in self.weekdays
        start, end = self.hours
        now = moment.hour * 60 + moment.minute
        day = moment.weekday()
        if start <= end:
            inside = start <= now < end
        else:  # wraps past midnight: the part after midnight belongs to the day before
            inside = now >= start or now < end
            if now < end:
                day = (day - 1) % 7
        return inside and (not self.weekdays or day in self.weekdays)


def parse_blackout(text: str) -> Blackout:
    value = " ".join(str(text).split()).lower()
    where = {"file": WHERE, "field": "--blackout"}
    if m := DATE_RANGE.match(value):
        try:
            first = date.fromisoformat(m.group(1))
            last = date.fromisoformat(m.group(2)) if m.group(2) else None
        except ValueError as exc:
            raise ValidationError(f"{text!r}: {exc}", **where) from None
        if last and last < first:
            raise ValidationError(f"{text!r}: the range ends before it starts", **where)
        return Blackout(value, first=first, last=last)
    days: set[int] = set()
    hours = None
    for part in value.split(" "):
        if m := HOURS.match(part):
            if hours:
                raise ValidationError(f"{text!r}: one hour range per blackout", **where)
            start = int(m.group(1)) * 60 + int(m.group(2))
            end = int(m.group(3)) * 60 + int(m.group(4))
            if start == end or end > 1440:
                raise ValidationError(f"{text!r}: the hour range is empty or past 24:00", **where)
            hours = (start, end)
        else:
            days |= _weekdays(part, text)
    if not days and not hours:
        raise ValidationError(
            f"{text!r} is not a blackout: give dates (2026-12-18..2027-01-04), weekdays "
            "(sat,sun or mon-fri) and/or hours (00:00-07:00)", **where)
    return Blackout(value, weekdays=frozenset(days), hours=hours)


def _weekdays(part: str, text: str) -> set[int]:
    days: set[int] = set()
    for item in filter(None, part.split(",")):
        low, _, high = item.partition("-")
        if low not in WEEKDAYS or (high and high not in WEEKDAYS):
            raise ValidationError(f"{text!r}: {item!r} is not a weekday (mon..sun) or an "
                                  "hour range (HH:MM-HH:MM)", file=WHERE, field="--blackout")
        a, b = WEEKDAYS.index(low), WEEKDAYS.index(high or low)
        days |= set(range(a, b + 1)) if a <= b else set(range(a, 7)) | set(range(0, b + 1))
    return days


@dataclass(frozen=True)
class Schedule:
    """A schedule as stored: ``cron`` (with ``tz``) or ``every_s``, never both."""

    name: str
    scenario: str                    # as the project names it (relative to its root)
    created_at: datetime
    cron: str | None = None
    tz: str = "UTC"
    every_s: float | None = None
    jitter_s: float = 0.0
    blackouts: tuple[str, ...] = ()
    max_late_s: float = DEFAULT_MAX_LATE_S
    notify_url: str | None = None
    notify_format: str = "json"      # or "slack"
    paused: bool = False
    last_due: datetime | None = None
    parsed_blackouts: tuple[Blackout, ...] = field(default=(), compare=False, repr=False)

    @property
    def zone(self) -> ZoneInfo:
        """Its time zone; NeverFires when this system does not know it."""
        try:
            return ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise NeverFires(self.name, f"{self.tz!r} is not a time zone this system knows "
                                        "(its tzdata changed?)") from None

    @property
    def when(self) -> str:
        """For people: ``cron 0 3 * * 1-5 (Europe/Berlin)`` or ``every 10s``."""
        base = f"cron {self.cron} ({self.tz})" if self.cron else \
            f"every {human_span(self.every_s or 0)}"
        return base + (f", jitter {human_span(self.jitter_s)}" if self.jitter_s else "")

    # -- when it fires -------------------------------------------------------------------
    def next_fire(self, after: datetime) -> datetime:
        """The first moment strictly after ``after`` (UTC); NeverFires, saying why, when
        there is none."""
        if self.every_s:
            step = timedelta(seconds=self.every_s)
            n = max(0, int((after - self.created_at) / step) + 1)
            fire = self.created_at + n * step
            while fire <= after:
                fire += step
            return fire
        from croniter import CroniterBadDateError, CroniterError, croniter

        if not self.cron:
            raise NeverFires(self.name, "it has neither a cron expression nor an interval")
        local = after.astimezone(self.zone)
        try:
            fire = croniter(self.cron, local, max_years_between_matches=CRON_HORIZON_YEARS
                            ).get_next(datetime)
        except CroniterBadDateError:
            raise NeverFires(self.name, f"no date in the next {CRON_HORIZON_YEARS} years "
                                        "matches it (a day its months do not have, like 30 "
                                        "February?)") from None
        except (CroniterError, ValueError) as exc:
            raise NeverFires(self.name, f"the cron {self.cron!r} does not parse: {exc}"
                             ) from None
        return fire.astimezone(UTC)

    def shortest_gap(self, after: datetime, *, at_most: float = 0.0) -> float:
        """The shortest time in seconds between two of its moments within ``GAP_SPAN``
        of ``after`` (its next ``GAP_FIRINGS``, and those around each change of its
        zone's clocks in that year): elapsed time, so a daily cron in a zone with
        daylight saving has a 23-hour gap. Stops early at a gap of ``at_most`` or
        less."""
        if self.every_s:
            return self.every_s
        fire = self.next_fire(after)
        end = fire + GAP_SPAN
        shortest = self._gaps(fire, GAP_FIRINGS, end, at_most)
        # a frequent cron's first firings end before the clocks change: look there too,
        # so the answer does not depend on the day the schedule was made
        day = timedelta(days=1)
        moment = after
        while shortest > at_most and moment < end:
            if moment.astimezone(self.zone).utcoffset() != \
                    (moment + day).astimezone(self.zone).utcoffset():
                start = self.next_fire(moment - day)
                shortest = min(shortest, self._gaps(start, GAP_FIRINGS, moment + 2 * day,
                                                    at_most))
            moment += day
        return shortest

    def _gaps(self, fire: datetime, firings: int, end: datetime, at_most: float) -> float:
        shortest = float("inf")
        for _ in range(firings):
            following = self.next_fire(fire)
            shortest = min(shortest, (following - fire).total_seconds())
            if shortest <= at_most or following > end:
                break
            fire = following
        return shortest

    def next_moment(self, now: datetime) -> datetime:
        """When it fires next, as people are told: after now and after its last run."""
        return self.next_fire(max(now, self.last_due or self.created_at))

    def due(self, now: datetime) -> tuple[datetime, int] | None:
        """The latest moment in (``last_due`` or creation, ``now``] at which it fired,
        and how many earlier ones it hides (missed while nothing ran the scheduler);
        None if it has not fired since."""
        after = self.last_due or self.created_at
        fire = self.next_fire(after)
        if fire > now:
            return None
        missed = 0
        if self.every_s:  # jump, do not walk: a year of 1s intervals is many steps
            step = timedelta(seconds=self.every_s)
            latest = fire + int((now - fire) / step) * step
            return latest, int((latest - fire) / step)
        for _ in range(100_000):
            following = self.next_fire(fire)
            if following > now:
                break
            fire, missed = following, missed + 1
        return fire, missed

    def jitter(self, due: datetime) -> float:
        """Seconds to wait after ``due``: the same in every process."""
        if not self.jitter_s:
            return 0.0
        digest = hashlib.sha256(f"{self.name}|{due.isoformat()}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 * self.jitter_s

    def blackout(self, moment: datetime) -> Blackout | None:
        local = moment.astimezone(self.zone)
        for window in self.parsed_blackouts or tuple(map(parse_blackout, self.blackouts)):
            if window.covers(local):
                return window
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "scenario": self.scenario, "cron": self.cron,
                "tz": self.tz, "every_s": self.every_s, "jitter_s": self.jitter_s,
                "blackouts": list(self.blackouts), "max_late_s": self.max_late_s,
                "notify": redact(self.notify_url), "notify_format": self.notify_format,
                "paused": self.paused, "when": self.when,
                "created_at": self.created_at.isoformat(),
                "last_due": self.last_due.isoformat() if self.last_due else None}


def redact(url: str | None) -> str | None:
    """A webhook URL as shown to people: chat webhooks carry their secret in the path."""
    if not url:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def make_schedule(name: str, scenario: str, *, cron: str | None = None, tz: str | None = None,
                  every: str | float | None = None, jitter: str | float | None = None,
                  blackouts: tuple[str, ...] = (), max_late: str | float | None = None,
                  notify_url: str | None = None, notify_format: str = "json",
                  created_at: datetime | None = None) -> Schedule:
    """A new schedule from what a person typed; ValidationError naming the option."""
    def bad(option: str, message: str) -> ValidationError:
        return ValidationError(message, file=WHERE, field=option)

    created = (created_at or clock.now()).replace(microsecond=0)
    if not NAME.fullmatch(name or ""):
        raise bad("NAME", f"{name!r}: use lowercase letters, digits, '.', '_' or '-' "
                          "(at most 63)")
    if (cron is None) == (every is None):
        raise bad("--cron/--every", "give exactly one of --cron EXPR or --every DURATION")
    every_s = None
    if cron is not None:
        from croniter import croniter

        if len(cron) > 200 or not croniter.is_valid(cron) or len(cron.split()) != 5:
            raise bad("--cron", f"{cron!r} is not a cron expression of five fields "
                                "(minute hour day-of-month month day-of-week)")
    else:
        every_s = _span("--every", every, low=MIN_EVERY_S)
    if tz is not None and not tz.strip():
        raise bad("--tz", "an empty time zone: name one (like Europe/Berlin or UTC), or "
                          "leave --tz out for UTC")
    if tz is not None and cron is None:
        raise bad("--tz", "a time zone goes with --cron (--every counts seconds)")
    zone = tz or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise bad("--tz", f"{zone!r} is not a time zone (like Europe/Berlin or UTC)") from None
    jitter_s = _span("--jitter", jitter, low=0.0) if jitter is not None else 0.0
    max_late_s = (_span("--max-late", max_late, low=0.0) if max_late is not None
                  else DEFAULT_MAX_LATE_S)
    if every_s and jitter_s >= every_s:
        raise bad("--jitter", f"must be shorter than the interval ({human_span(every_s)})")
    parsed = tuple(parse_blackout(b) for b in blackouts)
    if notify_format not in ("json", "slack"):
        raise bad("--notify-format", "json or slack")
    if notify_url is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(notify_url)
        if parts.scheme not in ("http", "https") or not parts.hostname \
                or len(notify_url) > 2000 or any(c.isspace() for c in notify_url):
            raise bad("--notify", f"{notify_url[:100]!r} is not an http(s) URL")
    made = Schedule(name=name, scenario=scenario, cron=cron, tz=zone, every_s=every_s,
                    jitter_s=jitter_s, blackouts=tuple(b.text for b in parsed),
                    max_late_s=max_late_s, notify_url=notify_url, notify_format=notify_format,
                    created_at=created, parsed_blackouts=parsed)
    if cron is not None:
        try:
            made.next_fire(created)
        except NeverFires as exc:
            raise bad("--cron", f"{cron!r} never fires: {exc.why}") from None
        if jitter_s:
            gap = made.shortest_gap(created, at_most=jitter_s)
            if jitter_s >= gap:
                raise bad("--jitter", f"must be shorter than the time between the cron's "
                                      f"moments (as little as {human_span(gap)})")
    return made


def _span(option: str, value: str | float | None, *, low: float) -> float:
    seconds = parse_duration(value)
    if seconds is None or seconds < low or seconds > MAX_SPAN_S:
        raise ValidationError(f"{value!r} is not a duration from {human_span(low)} to a year "
                              "(like 30s, 10m, 6h)", file=WHERE, field=option)
    return seconds


def from_row(row: ScheduleRow) -> Schedule:
    """A schedule as the store keeps it."""
    spec = row["spec"]
    return Schedule(
        name=row["name"], scenario=row["scenario"],
        created_at=datetime.fromisoformat(row["created_at"]), cron=spec.get("cron"),
        tz=spec.get("tz") or "UTC", every_s=spec.get("every_s"),
        jitter_s=spec.get("jitter_s") or 0.0, blackouts=tuple(spec.get("blackouts") or ()),
        max_late_s=spec.get("max_late_s", DEFAULT_MAX_LATE_S),
        notify_url=spec.get("notify_url"), notify_format=spec.get("notify_format") or "json",
        paused=bool(row["paused"]),
        last_due=datetime.fromisoformat(last) if (last := row["last_due"]) else None)


def spec_of(schedule: Schedule) -> dict[str, Any]:
    """What the store keeps of a schedule besides its name, scenario and state."""
    return {"cron": schedule.cron, "tz": schedule.tz, "every_s": schedule.every_s,
            "jitter_s": schedule.jitter_s, "blackouts": list(schedule.blackouts),
            "max_late_s": schedule.max_late_s, "notify_url": schedule.notify_url,
            "notify_format": schedule.notify_format}
