"""Slack: what it pushes (slash commands, buttons) through the real HTTP endpoints of
``gameday serve`` into a real store, and what gameday calls on Slack's Web API, caught by
a small HTTP server on 127.0.0.1 that answers as Slack's API does.

No Slack runs here: the request-signing scheme is checked against the worked example in
Slack's docs ("Verifying requests from Slack": secret, timestamp, body, signature), and
the payloads follow the shapes Slack documents for slash commands and ``block_actions``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from gameday.chat import commands
from gameday.chat.base import ChatDown
from gameday.chat.config import ChatConfig
from gameday.chat.relay import Relay
from gameday.chat.slack import (
    SlackChat,
    Unsigned,
    channel_name,
    epoch_ns,
    message_from_action,
    message_from_command,
    slack_text,
    verify,
)
from gameday.core.audit import Audit
from gameday.core.errors import ValidationError
from gameday.core.events import Kind
from gameday.incidents.incident import Incident
from gameday.store import Store
from gameday.web.app import create_app

# Slack's worked example (docs.slack.dev/authentication/verifying-requests-from-slack).
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

SECRET = "test-signing-secret-0123456789abcdef"
TOKEN = "xoxb-test-0000-secret-bot-token"
WEB_TOKEN = "t" * 32
COMMANDS, ACTIONS = "/api/v1/chat/slack/commands", "/api/v1/chat/slack/actions"


# -- Slack's Web API, on 127.0.0.1 ----------------------------------------------------------
@dataclass
class FakeSlack:
    """Records every Web API call (method, arguments, bearer token) and answers
    ``{"ok": true, ...}`` as Slack does; ``fail[method] = "error_code"`` answers that
    method ``{"ok": false, "error": ...}`` (HTTP 200, as Slack answers a refusal)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    fail: dict[str, str] = field(default_factory=dict)
    channels: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((method, args))
        if method in self.fail:
            return {"ok": False, "error": self.fail[method]}
        if method == "conversations.create":
            made = {"id": f"C0INC{len(self.channels) + 1}", "name": args["name"],
                    "is_member": True}
            self.channels.append(made)
            return {"ok": True, "channel": made}
        if method == "conversations.list":
            return {"ok": True, "channels": self.channels,
                    "response_metadata": {"next_cursor": ""}}
        if method in ("chat.postMessage", "chat.postEphemeral"):
            return {"ok": True, "channel": args.get("channel"), "ts": "1700000000.000100",
                    "message_ts": "1700000000.000100"}
        return {"ok": True}

    def called(self, method: str) -> list[dict[str, Any]]:
        return [args for m, args in self.calls if m == method]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            url = urlsplit(self.path)
            args: dict[str, Any] = dict(parse_qsl(url.query))
            if self.headers.get("Content-Type", "").startswith("application/json"):
                args.update(json.loads(raw or b"{}"))
            else:
                args.update(parse_qsl(raw.decode()))
            fake.tokens.add(self.headers.get("Authorization", ""))
            body = json.dumps(fake.answer(url.path.rsplit("/", 1)[-1], args)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST  # noqa: N815 - conversations.list is a GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    yield fake
    server.shutdown()
    server.server_close()


# -- gameday serve with a Slack relay -------------------------------------------------------
@dataclass
class Served:
    client: TestClient
    store: Store
    relay: Relay
    slack: FakeSlack
    incident: Incident
    room: str


def _config(api_url: str) -> ChatConfig:
    return ChatConfig.model_validate({"kind": "slack", "api_url": api_url})


@pytest.fixture
def served(tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch):
    """A store with ana (a responder) linked to the Slack account U0ANA and paged as
    incident commander of an incident, the relay's first turn made (the channel), and
    gameday serve's app answering Slack's requests."""
    monkeypatch.setenv("GAMEDAY_CHAT_TOKEN", TOKEN)
    monkeypatch.setenv("GAMEDAY_SLACK_SIGNING_SECRET", SECRET)
    store = Store(tmp_path / "serve.db")
    store.add_user("ana", "responder", hashlib.sha256(b"ana").hexdigest(), "test")
    store.link_chat_account("U0ANA", "ana")
    incident = Incident.open(store, "checkout is failing", service="checkout")
    incident.declare("SEV-3", "gameday", alert="CheckoutErrors")
    incident.page("ana", "incident_commander", "checkout's error rate")
    config = _config(slack.url)
    relay = Relay(store, SlackChat.from_config(config, tmp_path), config, owner="replica-1",
                  base_url="http://gameday.test")
    relay.tick()
    room = store.chat_room(incident.id)
    assert room is not None and room["state"] == "open"
    app = create_app(token=WEB_TOKEN, store=store, data_dir=tmp_path / "data")
    app.state.relay = relay
    with TestClient(app) as client:
        yield Served(client, store, relay, slack, incident, str(room["room"]))
    store.close()


def sign(body: bytes, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    """Slack's headers for ``body``, signed as its docs say (computed here with hmac,
    not with the SDK under test)."""
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body,
                      hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def command_body(text: str, user: str = "U0ANA", channel: str = "C0INC1",
                 trigger: str | None = None) -> bytes:
    """A slash command as Slack posts it (the fields of its documented example)."""
    return urlencode({
        "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": "T0001", "team_domain": "example",
        "enterprise_id": "E0001", "enterprise_name": "Globular Construct Inc",
        "channel_id": channel, "channel_name": "incident-gameday-1", "user_id": user,
        "user_name": "Steve", "command": "/gameday", "text": text,
        "response_url": "https://hooks.slack.com/commands/1234/5678", "api_app_id": "A123456",
        "trigger_id": trigger or f"13345224609.738474920.{time.monotonic_ns()}"}).encode()


def action_payload(value: str, user: str = "U0ANA", channel: str = "C0INC1",
                   at: float | None = None) -> dict[str, Any]:
    """A button click as Slack posts it: the documented ``block_actions`` shape."""
    action_ts = f"{time.time() if at is None else at:.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "ana", "name": "ana", "team_id": "T0001"},
        "api_app_id": "A123456", "token": "9s8d9as89d8as9d8as989",
        "container": {"type": "message", "message_ts": "1700000000.000100",
                      "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "12466734323.1395872398.1a2b3c", "team": {"id": "T0001",
                                                             "domain": "example"},
        "channel": {"id": channel, "name": "incident-gameday-1"},
        "message": {"type": "message", "ts": "1700000000.000100", "text": "PAGE ana"},
        "response_url": "https://hooks.slack.com/actions/AABA1ABCD/1232321423432/D09sSasdasdAS9",
        "actions": [{"action_id": "gameday_ack", "block_id": "gameday_page",
                     "text": {"type": "plain_text", "text": "Acknowledge"},
                     "value": value, "type": "button", "action_ts": action_ts}],
    }


def action_body(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def post(served: Served, path: str, body: bytes, headers: dict[str, str] | None = None):
    return served.client.post(path, content=body,
                              headers=sign(body) if headers is None else headers)


# -- the signing scheme ------------------------------------------------------------------------
def test_slacks_own_example_is_accepted_with_its_timestamp_pinned():
    from slack_sdk.signature import Clock, SignatureVerifier

    class Then(Clock):
        def now(self) -> float:
            return float(DOC_TIMESTAMP)

    verifier = SignatureVerifier(DOC_SECRET, clock=Then())
    assert verifier.is_valid(DOC_BODY, DOC_TIMESTAMP, DOC_SIGNATURE)
    assert sign(DOC_BODY.encode(), int(DOC_TIMESTAMP), DOC_SECRET)["X-Slack-Signature"] \
        == DOC_SIGNATURE
    headers = {"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": DOC_TIMESTAMP}
    verify(DOC_SECRET, headers, DOC_BODY.encode(), now=float(DOC_TIMESTAMP) + 299)


@pytest.mark.parametrize("change,why", [
    (lambda h, b, n: (h, b + b"&text=resolve", n), "does not match"),
    (lambda h, b, n: ({**h, "x-slack-signature": "v0=" + "0" * 64}, b, n), "does not match"),
    (lambda h, b, n: (h, b, n + 301), "older than 5 minutes"),
    (lambda h, b, n: (h, b, n - 301), "older than 5 minutes"),
    (lambda h, b, n: ({"X-Slack-Signature": DOC_SIGNATURE}, b, n), "missing"),
    (lambda h, b, n: ({"X-Slack-Request-Timestamp": DOC_TIMESTAMP}, b, n), "missing"),
    (lambda h, b, n: ({**h, "x-slack-request-timestamp": "soon"}, b, n), "not a time"),
    (lambda h, b, n: (h, b"\xff" + b, n), "not UTF-8"),
])
def test_anything_but_slacks_signature_within_five_minutes_is_refused(change, why):
    headers = {"x-slack-signature": DOC_SIGNATURE, "x-slack-request-timestamp": DOC_TIMESTAMP}
    headers, body, now = change(headers, DOC_BODY.encode(), float(DOC_TIMESTAMP))
    with pytest.raises(Unsigned, match=why):
        verify(DOC_SECRET, headers, body, now)
    with pytest.raises(Unsigned):
        verify("", {"x-slack-signature": DOC_SIGNATURE,
                    "x-slack-request-timestamp": DOC_TIMESTAMP}, DOC_BODY.encode(),
               float(DOC_TIMESTAMP))


def test_slacks_example_request_reaches_the_endpoint(served, monkeypatch):
    """The documented request itself, byte for byte, at its own time: verified, read,
    and answered (its channel is nobody's incident room)."""
    import time_machine

    served.relay.signing_secret = DOC_SECRET  # as if the server had been started with it
    headers = {"X-Slack-Signature": DOC_SIGNATURE, "X-Slack-Request-Timestamp": DOC_TIMESTAMP,
               "Content-Type": "application/x-www-form-urlencoded"}
    with time_machine.travel(int(DOC_TIMESTAMP) + 60, tick=False):
        answer = post(served, COMMANDS, DOC_BODY.encode(), headers)
    assert answer.status_code == 200
    assert answer.json() == {"response_type": "ephemeral",
                             "text": "this channel is not an incident's room"}


# -- what Slack pushes, read ---------------------------------------------------------------
def test_a_slash_command_is_a_message_the_command_language_reads():
    form = dict(parse_qsl(DOC_BODY, keep_blank_values=True))
    message = message_from_command(form)
    assert (message.room, message.account) == ("G8PSS9T3V", "U2CERLKJA")
    assert message.id == "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    assert message.text == "/gameday" and commands.parse(message.text).verb == "help"
    before = time.time_ns()
    ack = message_from_command({**form, "text": " severity SEV-2 checkout errors "})
    assert commands.parse(ack.text) == commands.Command(
        "severity", ("SEV-2", "checkout", "errors"), "SEV-2 checkout errors")
    assert before <= ack.at_epoch_ns <= time.time_ns()  # dated when received
    for missing in ("user_id", "channel_id", "trigger_id", "command"):
        with pytest.raises(ValidationError) as err:
            message_from_command({k: v for k, v in form.items() if k != missing})
        assert err.value.field == missing


def test_a_button_is_a_message_dated_by_its_action():
    payload = action_payload("ack", at=1548426417.84018)
    message = message_from_action(payload)
    assert (message.room, message.account, message.text) == ("C0INC1", "U0ANA", "/gameday ack")
    assert message.id == "1700000000.000100/1548426417.840180"
    assert message.at_epoch_ns == 1548426417_840180000
    assert epoch_ns("1548426417", "ts") == 1548426417 * 10**9
    bad = [({**payload, "type": "view_submission"}, "payload.type"),
           ({**payload, "actions": []}, "payload.actions"),
           ({**payload, "user": {}}, "payload.user.id"),
           ({**payload, "container": None}, "payload.container.message_ts"),
           ({**payload, "actions": [{**payload["actions"][0], "action_ts": "x.1"}]},
            "payload.actions[0].action_ts")]
    for changed, field_name in bad:
        with pytest.raises(ValidationError) as err:
            message_from_action(changed)
        assert err.value.field == field_name


def test_channel_names_follow_slacks_rules_and_stay_one_per_incident():
    assert channel_name("[DRILL] gameday #12: Checkout is DOWN (eu-west)!") == \
        "drill-gameday-12-checkout-is-down-eu-west"
    long = [channel_name(f"[INCIDENT] gameday #{n}: " + "très long titre " * 20)
            for n in (7, 71)]
    assert all(len(n) <= 80 and set(n) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")
               for n in long)
    assert long[0] != long[1] and long[0].startswith("incident-gameday-7-")


def test_a_page_mentions_its_people_and_speaks_slacks_command():
    line = slack_text("PAGE (a rehearsal) U0ANA W0BOB: you are paged as incident commander"
                      " - answer with !gd ack")
    assert line == ("PAGE (a rehearsal) <@U0ANA> <@W0BOB>: you are paged as incident "
                    "commander - answer with /gameday ack")
    assert slack_text("note: p99 < 2s & rising") == "note: p99 &lt; 2s &amp; rising"


# -- gameday's calls on Slack ------------------------------------------------------------
def test_the_room_is_a_channel_with_its_topic_its_people_and_the_page(served):
    slack = served.slack
    assert [m for m, _ in slack.calls[:3]] == ["conversations.create",
                                               "conversations.setTopic",
                                               "conversations.invite"]
    (create,) = slack.called("conversations.create")
    assert create == {"name": f"incident-gameday-{served.incident.id}-checkout-is-failing",
                      "is_private": "0"}
    (topic,) = slack.called("conversations.setTopic")
    assert topic["channel"] == served.room == "C0INC1"
    assert f"http://gameday.test/incidents/{served.incident.id}" in topic["topic"]
    assert "/gameday help" in topic["topic"]
    invites = slack.called("conversations.invite")  # with the room, and with the page
    assert invites and all(i == {"channel": "C0INC1", "users": "U0ANA", "force": "1"}
                           for i in invites)
    (page,) = [a for a in slack.called("chat.postMessage") if a["text"].startswith("PAGE")]
    assert page["channel"] == "C0INC1" and "<@U0ANA>" in page["text"]
    assert "/gameday ack" in page["text"]
    (button,) = page["blocks"][1]["elements"]
    assert (button["value"], button["text"]["text"]) == ("ack", "Acknowledge")
    assert slack.tokens == {f"Bearer {TOKEN}"}
    opened = [e for e in served.incident.events() if e.kind == Kind.CHAT_ROOM_OPENED]
    assert opened[0].data["room"] == "C0INC1"


def test_a_linked_person_acknowledges_judges_and_resolves_from_slack(served):
    said = post(served, COMMANDS, command_body("ack"))
    assert said.status_code == 200
    assert said.json() == {"response_type": "in_channel", "text": "ana acknowledged"}
    assert served.incident.state == "acknowledged"
    said = post(served, COMMANDS, command_body("severity sev-2 checkout errors at 30%"))
    assert said.json()["text"] == "ana set the severity to SEV-2: checkout errors at 30%"
    assert served.store.incident(served.incident.id)["severity"] == "SEV-2"
    said = post(served, COMMANDS, command_body("resolve rolled back the deploy"))
    assert said.json() == {"response_type": "in_channel", "text": "ana resolved it"}
    assert served.incident.state == "resolved"
    moves = {e.kind: e.actor for e in served.incident.events()}
    assert moves[Kind.INCIDENT_ACKNOWLEDGED] == moves[Kind.INCIDENT_RESOLVED] == "ana"
    served.slack.calls.clear()
    served.relay.tick()  # the moves, posted
    served.relay.tick()  # the room, closed
    assert served.slack.calls[-2][0] == "chat.postMessage"
    assert "this room stays as the record" in served.slack.calls[-2][1]["text"]
    assert served.slack.calls[-1] == ("conversations.archive", {"channel": "C0INC1"})
    assert served.store.chat_room(served.incident.id)["state"] == "closed"


def test_the_acknowledge_button_acknowledges_at_the_moment_it_was_clicked(served):
    clicked = time.time() - 20
    answer = post(served, ACTIONS, action_body(action_payload("ack", at=clicked)))
    assert (answer.status_code, answer.content) == (200, b"")
    assert served.incident.state == "acknowledged"
    (acked,) = [e for e in served.incident.events() if e.kind == Kind.INCIDENT_ACKNOWLEDGED]
    assert acked.actor == "ana" and acked.at_utc.startswith(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(clicked))))
    replies = [a for a in served.slack.called("chat.postMessage")
               if a["text"] == "ana acknowledged"]
    assert replies == [{"channel": "C0INC1", "text": "ana acknowledged"}]
    again = post(served, ACTIONS, action_body(action_payload("ack", at=clicked)))
    assert (again.status_code, again.content) == (200, b"")  # one click, acted on once
    assert len([a for a in served.slack.called("chat.postMessage")
                if a["text"] == "ana acknowledged"]) == 1


def test_an_unlinked_slack_account_is_refused_and_audited(served):
    said = post(served, COMMANDS, command_body("resolve", user="U0MALLORY"))
    assert said.status_code == 200 and said.json()["response_type"] == "ephemeral"
    assert said.json()["text"].startswith("refused: U0MALLORY is not linked")
    clicked = post(served, ACTIONS, action_body(action_payload("ack", user="U0MALLORY")))
    assert clicked.status_code == 200
    (whisper,) = served.slack.called("chat.postEphemeral")
    assert whisper["user"] == "U0MALLORY" and whisper["text"].startswith("refused:")
    assert served.incident.state == "declared"
    refusals = [a for a in served.store.audit_log() if a["action"] == Audit.CHAT_REFUSED]
    assert [(a["who"], a["data"]["command"]) for a in refusals] == [
        ("U0MALLORY", "resolve"), ("U0MALLORY", "ack")]


def test_a_viewer_may_not_resolve_and_a_bad_command_is_said_to_them_alone(served):
    served.store.add_user("vic", "viewer", hashlib.sha256(b"vic").hexdigest(), "test")
    served.store.link_chat_account("U0VIC", "vic")
    said = post(served, COMMANDS, command_body("resolve", user="U0VIC")).json()
    assert said["response_type"] == "ephemeral" and "may not resolve" in said["text"]
    said = post(served, COMMANDS, command_body("reboot everything")).json()
    assert said["response_type"] == "ephemeral" and "no command 'reboot'" in said["text"]
    said = post(served, COMMANDS, command_body("status")).json()
    assert said["response_type"] == "in_channel" and "checkout is failing" in said["text"]
    assert served.incident.state == "declared"


def test_a_channel_that_is_no_incidents_room_is_told_so(served):
    said = post(served, COMMANDS, command_body("ack", channel="C0RANDOM"))
    assert said.json() == {"response_type": "ephemeral",
                           "text": "this channel is not an incident's room"}
    post(served, ACTIONS, action_body(action_payload("ack", channel="C0RANDOM")))
    (whisper,) = served.slack.called("chat.postEphemeral")
    assert whisper == {"channel": "C0RANDOM", "user": "U0ANA",
                       "text": "this channel is not an incident's room"}
    assert served.incident.state == "declared"


# -- forged and malformed requests -----------------------------------------------------------
def _forged(body: bytes) -> list[dict[str, str]]:
    good = sign(body)
    return [
        {**good, "X-Slack-Signature": "v0=" + "0" * 64},
        sign(body, secret="someone-elses-secret"),
        sign(body, at=time.time() - 301),
        {k: v for k, v in good.items() if k != "X-Slack-Signature"},
        {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        {"Content-Type": "application/x-www-form-urlencoded"},
    ]


@pytest.mark.parametrize("path,body", [
    (COMMANDS, command_body("resolve", trigger="forged-trigger")),
    (ACTIONS, action_body(action_payload("ack"))),
])
def test_a_forged_or_old_request_is_401_and_changes_nothing(served, path, body):
    calls, audit = list(served.slack.calls), served.store.audit_log()
    for headers in _forged(body):
        answer = post(served, path, body, headers)
        assert answer.status_code == 401
        assert answer.json()["error"].startswith("not signed by Slack")
        assert "Traceback" not in answer.text
    assert served.incident.state == "declared"
    assert served.store.audit_log() == audit and served.slack.calls == calls
    assert served.store.claim_chat_message("forged-trigger", None)  # never claimed


def test_a_forged_body_signed_for_another_body_is_refused(served):
    honest = command_body("status", trigger="t-1")
    answer = post(served, COMMANDS, command_body("resolve", trigger="t-2"), sign(honest))
    assert answer.status_code == 401 and served.incident.state == "declared"


@pytest.mark.parametrize("path,body,field_name", [
    (COMMANDS, urlencode({"command": "/gameday", "text": "ack", "channel_id": "C0INC1",
                          "trigger_id": "1"}).encode(), "user_id"),
    (COMMANDS, b"\xff\xfe", None),
    (ACTIONS, b"payload=not+json", "payload"),
    (ACTIONS, b"nothing=here", "payload"),
    (ACTIONS, urlencode({"payload": "[1]"}).encode(), "payload"),
    (ACTIONS, action_body({**action_payload("ack"), "user": None}), "payload.user.id"),
])
def test_bad_form_data_is_400_naming_the_field(served, path, body, field_name):
    answer = post(served, path, body)
    if field_name is None:  # not UTF-8: the signature cannot be checked over it
        assert answer.status_code == 401
        return
    assert answer.status_code == 400 and answer.json()["field"] == field_name
    assert served.incident.state == "declared"


def test_slacks_certificate_check_is_answered_and_ignored(served):
    body = urlencode({"ssl_check": "1", "token": "gIkuvaNzQIHg97ATvDxqgjtO"}).encode()
    answer = post(served, COMMANDS, body)
    assert (answer.status_code, answer.content) == (200, b"")
    assert served.incident.state == "declared"


def test_a_server_without_a_chat_answers_404(tmp_path):
    app = create_app(token=WEB_TOKEN, store=Store(tmp_path / "none.db"), data_dir=tmp_path)
    with TestClient(app) as client:
        body = command_body("ack")
        answer = client.post(COMMANDS, content=body, headers=sign(body))
        assert (answer.status_code, answer.json()) == (404, {"error": "no chat configured"})
        assert client.post(ACTIONS, content=b"", headers=sign(b"")).status_code == 404


# -- a Slack that refuses or is away ------------------------------------------------------
def test_slacks_refusal_is_chat_down_without_the_token(slack):
    chat = SlackChat(TOKEN, slack.url)
    slack.fail["chat.postMessage"] = "channel_not_found"
    with pytest.raises(ChatDown) as down:
        chat.post("C0GONE", "hello")
    assert str(down.value) == "slack chat.postMessage: channel_not_found"
    slack.fail["conversations.invite"] = "already_in_channel"
    chat.invite("C0INC1", ["U0ANA"])  # nothing to do is no failure


def test_a_slack_that_cannot_be_reached_is_chat_down(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    chat = SlackChat(TOKEN, f"http://127.0.0.1:{port}/api/")
    with pytest.raises(ChatDown) as down:
        chat.open_room("[INCIDENT] gameday #1: x", "topic", ["U0ANA"])
    assert "conversations.create" in str(down.value) and TOKEN not in str(down.value)


@pytest.mark.parametrize("away", ["refuses", "down"])
def test_the_relay_records_chat_unavailable_and_goes_on(tmp_path, slack, monkeypatch, away):
    monkeypatch.setenv("GAMEDAY_CHAT_TOKEN", TOKEN)
    store = Store(tmp_path / "away.db")
    incident = Incident.open(store, "payments down", service="payments")
    incident.declare("SEV-3", "gameday")
    if away == "refuses":
        slack.fail["conversations.create"] = "channel_not_found"
        url = slack.url
    else:
        url = "http://127.0.0.1:9/api/"  # the discard port: nothing answers
    config = _config(url)
    relay = Relay(store, SlackChat.from_config(config, tmp_path), config, owner="r1",
                  base_url="http://gameday.test")
    relay.tick()
    (unavailable,) = [e for e in incident.events() if e.kind == Kind.CHAT_UNAVAILABLE]
    assert unavailable.data["chat"] == "slack" and TOKEN not in unavailable.data["error"]
    if away == "refuses":
        assert unavailable.data["error"] == "slack conversations.create: channel_not_found"
    assert store.chat_room(incident.id)["state"] == "opening"  # tried again later
    incident.acknowledge("ana", via="cli")  # the incident goes on without its room
    assert incident.state == "acknowledged"


def test_a_half_made_room_is_found_again_not_made_twice(slack):
    chat = SlackChat(TOKEN, slack.url)
    first = chat.open_room("[INCIDENT] gameday #3: db", "t", [])
    slack.fail["conversations.create"] = "name_taken"
    assert chat.open_room("[INCIDENT] gameday #3: db", "t", ["U0ANA"]) == first
    assert len(slack.channels) == 1 and slack.called("conversations.list")


def test_receive_waits_and_hands_nothing_back(slack):
    chat = SlackChat(TOKEN, slack.url)
    started = time.monotonic()
    assert chat.receive(0.2) == [] and time.monotonic() - started >= 0.19
    chat.close()
    assert chat.receive(5) == []  # closed: at once


def test_slack_sdk_is_loaded_only_when_a_slack_chat_is_used():
    code = ("import sys, gameday.cli.main, gameday.web.app, gameday.chat.slack; "
            "print('slack_sdk' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_a_slack_that_never_answers_holds_the_incident_page_no_longer_than_matrix(
        tmp_path, monkeypatch):
    """The incident page shows the room as Slack has it; a Slack that takes the
    connection and then says nothing costs the page a few seconds (as a homeserver's
    does, ``base.HISTORY_TIMEOUT_S``), not the Web API calls' own wait and its retry:
    the page is read at 3am, and says the room could not be read."""
    import socket

    from gameday.chat.base import HISTORY_TIMEOUT_S

    monkeypatch.setenv("GAMEDAY_CHAT_TOKEN", TOKEN)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # takes connections (the kernel's backlog), never reads or answers
    try:
        store = Store(tmp_path / "silent.db")
        incident = Incident.open(store, "checkout is failing", service="checkout")
        incident.declare("SEV-2", "gameday")
        assert store.claim_chat_room(incident.id, "slack", "replica-1")
        assert store.chat_room_made(incident.id, "C0SILENT", "replica-1")
        config = _config(f"http://127.0.0.1:{silent.getsockname()[1]}/api/")
        relay = Relay(store, SlackChat.from_config(config, tmp_path), config,
                      owner="replica-1", base_url="http://gameday.test")
        app = create_app(token=WEB_TOKEN, store=store, data_dir=tmp_path / "data")
        app.state.relay = relay
        with TestClient(app) as client:
            began = time.monotonic()
            page = client.get(f"/incidents/{incident.id}",
                              headers={"Authorization": f"Bearer {WEB_TOKEN}"})
            took = time.monotonic() - began
        assert page.status_code == 200
        assert 'id="room-error"' in page.text and "could not be read" in page.text
        assert TOKEN not in page.text
        assert took < HISTORY_TIMEOUT_S + 4, f"the page waited {took:.1f} s for Slack"
        store.close()
    finally:
        silent.close()


def test_a_chat_that_stops_answering_after_the_room_is_made_is_on_the_record(served):
    """The room was made; then Slack stops taking lines: the page it could not post is
    on the incident's timeline as ``chat.unavailable`` (once for the outage, not once a
    turn), the incident goes on, and the line is posted once Slack is back."""
    served.slack.fail["chat.postMessage"] = "service_unavailable"
    served.incident.page("bob", "scribe", "more hands")
    for _ in range(3):
        served.relay.tick()
    down = [e for e in served.incident.events() if e.kind == Kind.CHAT_UNAVAILABLE]
    assert [e.data for e in down] == [{"chat": "slack", "error":
                                       "slack chat.postMessage: service_unavailable"}]
    served.incident.acknowledge("ana", via="cli")  # it goes on without its room
    assert served.incident.state == "acknowledged"
    del served.slack.fail["chat.postMessage"]
    served.relay.tick()
    posted = [a["text"] for a in served.slack.called("chat.postMessage")]
    assert any(t.startswith("PAGE bob") for t in posted)
    assert any(t.startswith("incident.acknowledged") for t in posted)
    served.slack.fail["chat.postMessage"] = "service_unavailable"  # a second outage
    served.incident.page("cy", "scribe", "more hands")
    served.relay.tick()
    assert len([e for e in served.incident.events() if e.kind == Kind.CHAT_UNAVAILABLE]) == 2


def test_a_real_incidents_room_is_served_before_any_rehearsals(slack, tmp_path, monkeypatch):
    """One relay serves every room in turn: a drill opened first (its room, its page,
    its timeline) never comes before a real incident's room and page, so a rehearsal
    never delays the real on-call's page in chat."""
    monkeypatch.setenv("GAMEDAY_CHAT_TOKEN", TOKEN)
    store = Store(tmp_path / "order.db")
    store.add_user("ana", "responder", hashlib.sha256(b"ana").hexdigest(), "test")
    store.link_chat_account("U0ANA", "ana")
    drill = Incident.open(store, "checkout is slow", service="checkout", kind="drill",
                          run_dir=str(tmp_path / "drill"))
    drill.declare("SEV-3", "gameday")
    drill.page("ana", "incident_commander", "a drill")
    real = Incident.open(store, "payments down", service="payments")
    real.declare("SEV-1", "alertmanager")
    real.page("ana", "incident_commander", "PaymentsDown fired")
    config = _config(slack.url)
    relay = Relay(store, SlackChat.from_config(config, tmp_path), config, owner="r1",
                  base_url="http://gameday.test")
    relay.tick()
    made = [a["name"] for a in slack.called("conversations.create")]
    assert made == [f"incident-gameday-{real.id}-payments-down",
                    f"drill-gameday-{drill.id}-checkout-is-slow"]
    pages = [a["text"] for a in slack.called("chat.postMessage")
             if a["text"].startswith("PAGE")]
    assert pages == ["PAGE <@U0ANA>: you are paged as incident commander - answer with "
                     "/gameday ack",
                     "PAGE (a rehearsal) <@U0ANA>: you are paged as incident commander - "
                     "answer with /gameday ack"]
    store.close()
