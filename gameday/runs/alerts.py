"""Alertmanager webhook payloads (version "4"): decode, parse and validate.

Shared by ``gameday serve`` and a game day's own receiver (``receiver``), so both
refuse the same things the same way.

Delivery is at-least-once, so every alert instance has a key: the group's
``groupKey``, the alert's ``fingerprint`` and its ``startsAt``. A redelivered or
repeated notification carries the same key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gameday.core.errors import GamedayError, ValidationError
from gameday.core.text import LARGEST, suspect, unkept

WHERE = "alertmanager payload"


@dataclass(frozen=True)
class AlertInstance:
    group_key: str
    fingerprint: str
    status: str
    starts_at: str
    ends_at: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str

    @property
    def key(self) -> str:
        return f"{self.group_key}|{self.fingerprint}|{self.starts_at}"

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Notification:
    status: str
    receiver: str
    group_key: str
    truncated: int
    alerts: tuple[AlertInstance, ...]


def _strings(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise ValidationError("must be a mapping of strings", file=WHERE, field=field)
    return dict(value)


def _text(data: dict[str, Any], key: str, field: str, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise ValidationError("must be a non-empty string", file=WHERE, field=field)
    return value


# Alertmanager's times are RFC 3339 (Go's, to the nanosecond; "0001-01-01T00:00:00Z"
# for an alert with no end yet).
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
                     r"(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def _time(data: dict[str, Any], key: str, field: str, required: bool = True) -> str:
    value = _text(data, key, field, required)
    if value and not RFC3339.fullmatch(value):
        raise ValidationError(f"must be an RFC 3339 time like 2026-11-22T10:00:00Z, not "
                              f"{value[:40]!r}", file=WHERE, field=field)
    return value


def parse(payload: Any) -> Notification:
    if not isinstance(payload, dict):
        raise ValidationError("must be a JSON object", file=WHERE)
    if payload.get("version") != "4":
        raise ValidationError(f"unsupported version {payload.get('version')!r} (want \"4\")",
                              file=WHERE, field="version")
    status = _text(payload, "status", "status")
    if status not in ("firing", "resolved"):
        raise ValidationError("must be firing or resolved", file=WHERE, field="status")
    group_key = _text(payload, "groupKey", "groupKey")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise ValidationError("must be a non-empty list", file=WHERE, field="alerts")
    truncated = payload.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int) \
            or not 0 <= truncated <= LARGEST:
        raise ValidationError("must be a count", file=WHERE, field="truncatedAlerts")
    receiver = payload.get("receiver", "")
    if not isinstance(receiver, str):
        raise ValidationError("must be a string", file=WHERE, field="receiver")
    parsed = []
    for i, raw in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(raw, dict):
            raise ValidationError("must be an object", file=WHERE, field=where)
        a_status = _text(raw, "status", f"{where}.status")
        if a_status not in ("firing", "resolved"):
            raise ValidationError("must be firing or resolved", file=WHERE,
                                  field=f"{where}.status")
        labels = _strings(raw.get("labels"), f"{where}.labels")
        if not labels.get("alertname"):
            raise ValidationError("is required", file=WHERE, field=f"{where}.labels.alertname")
        parsed.append(AlertInstance(
            group_key=group_key, fingerprint=_text(raw, "fingerprint", f"{where}.fingerprint"),
            status=a_status, starts_at=_time(raw, "startsAt", f"{where}.startsAt"),
            ends_at=_time(raw, "endsAt", f"{where}.endsAt", required=False),
            labels=labels, annotations=_strings(raw.get("annotations"), f"{where}.annotations"),
            generator_url=_text(raw, "generatorURL", f"{where}.generatorURL", required=False)))
    return Notification(status=status, receiver=receiver,
                        group_key=group_key, truncated=truncated, alerts=tuple(parsed))


# -- intake: what both webhook endpoints do before anything is recorded ---------------
MAX_BODY = 1 << 20  # bytes; Alertmanager's notifications are far smaller


class Rejected(GamedayError):
    """A webhook request refused before it was parsed: ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def decode(body: bytes) -> Notification:
    """The body of a webhook request as a notification: 413 past ``MAX_BODY``, 400 for
    what is not JSON (or nests beyond reason), ValidationError (422) naming the field."""
    if len(body) > MAX_BODY:
        raise Rejected(413, f"payload larger than {MAX_BODY} bytes")
    try:  # UTF-8, as JSON on the wire is (RFC 8259): never UTF-16 or -32, which
        # json.loads would take from bytes, spelling past ``suspect``'s look
        payload = json.loads((body or b"null").decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Rejected(400, f"not JSON: {str(exc)[:200]}") from None
    if suspect(body):
        unfit = unkept(payload)
        if unfit:
            raise ValidationError(unfit[1], file=WHERE, field=unfit[0])
    return parse(payload)
