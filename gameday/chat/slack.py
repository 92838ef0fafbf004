"""Slack through its own SDK (slack-sdk): an incident's room is a public channel the
app makes, its people are invited by their Slack user ids (``U012AB3CD``), and the
timeline is posted with ``chat.postMessage``.

Slack pushes what people do to gameday over HTTP rather than being polled: the
``/gameday`` slash command and the page's Acknowledge button arrive at ``gameday
serve`` (``gameday.web.chat``), are checked against the app's signing secret
(``verify``), and become a ``Message`` (``message_from_command``,
``message_from_action``) that goes through ``Relay.handle`` like any chat's.

slack_sdk is imported inside the functions that use it: ``gameday --help`` and every
project without a Slack chat never load it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gameday.chat.base import HISTORY_TIMEOUT_S, ChatDown, Message
from gameday.core import clock
from gameday.core.errors import ValidationError

if TYPE_CHECKING:
    from pathlib import Path

    from slack_sdk import WebClient

    from gameday.chat.config import ChatConfig

log = logging.getLogger(__name__)

SLACK_API = "https://slack.com/api/"
MAX_AGE_S = 5 * 60     # Slack's own advice: a signed request older than this is a replay
NAME_MAX = 80          # Slack's longest channel name
TOPIC_MAX = 250        # Slack's longest channel topic
PREFIX = "/gameday"    # how a slash command's text becomes a command (commands.PREFIXES)
ACK_ACTION = "gameday_ack"
TIMEOUT_S = 10


class Unsigned(Exception):
    """A request Slack did not sign with the app's secret, or signed too long ago."""


def channel_name(room: str) -> str:
    """A Slack channel name for the relay's room name: lowercase letters, digits, ``-``
    and ``_``, at most 80 characters. The room name carries the incident's id early
    (``[DRILL] gameday #12: ...`` becomes ``drill-gameday-12-...``), so an incident has
    one channel name: a retry after a half-made room finds that channel, never a second
    one."""
    name = re.sub(r"[^a-z0-9_-]+", "-", room.lower()).strip("-_")
    return name[:NAME_MAX].rstrip("-_") or "gameday"


def slack_text(text: str) -> str:
    """A relay line as Slack shows it: ``&``, ``<`` and ``>`` escaped (Slack reads them
    as markup), the command language's ``!gd`` spelled as the slash command people
    type here (Slack hands gameday only slash commands and buttons, never plain
    messages), and the paged accounts of a PAGE line mentioned (``<@U0ANA>``), so
    Slack notifies them."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"(?<![\w/])!(?:gd|gameday)\b", PREFIX, text)
    if text.startswith("PAGE"):
        head, sep, tail = text.partition(": you are paged")
        head = re.sub(r"\b([UW][A-Z0-9]{2,})\b", r"<@\1>", head)
        text = head + sep + tail
    return text


def page_blocks(text: str) -> list[dict[str, Any]]:
    """A page as Block Kit: its line, and an Acknowledge button whose value is the
    command it stands for (``ack``); a click comes back as a ``block_actions``
    payload (``message_from_action``)."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": "gameday_page", "elements": [
            {"type": "button", "action_id": ACK_ACTION, "value": "ack", "style": "primary",
             "text": {"type": "plain_text", "text": "Acknowledge"}}]},
    ]


class SlackChat:
    """The ``Chat`` gameday uses for Slack (``[chat] kind = "slack"``): a bot token with
    the scopes docs/chat.md lists. Every failed call, refused by Slack or never
    answered, is ``ChatDown`` in words that never hold the token."""

    kind = "slack"

    def __init__(self, token: str, api_url: str | None = None, *, buttons: bool = True,
                 timeout_s: int = TIMEOUT_S) -> None:
        from slack_sdk import WebClient

        self._token = token
        base = (api_url or SLACK_API).rstrip("/") + "/"
        self._client = WebClient(token=token, base_url=base, timeout=timeout_s)
        # the incident page's read of the room: its own short wait, never tried twice
        self._reader = WebClient(token=token, base_url=base, retry_handlers=[],
                                 timeout=max(1, int(min(timeout_s, HISTORY_TIMEOUT_S))))
        self.buttons = buttons
        self._closed = threading.Event()

    @classmethod
    def from_config(cls, config: ChatConfig, root: Path) -> SlackChat:
        """The project's Slack: its token (``token_env`` or ``token_file``), its API."""
        return cls(config.token(root), config.api_url)

    # -- the Chat interface ---------------------------------------------------------------
    def open_room(self, name: str, topic: str, invite: list[str]) -> str:
        """A public channel for the incident, its topic, its people; the channel id. A
        channel of the same name (made by an earlier try that failed half-way) is
        taken as the incident's."""
        channel = channel_name(name)
        made = self._call("conversations.create", lambda c: c.conversations_create(
            name=channel, is_private=False), fine=("name_taken",))
        room = str(made["channel"]["id"]) if "channel" in made else self._find(channel)
        self._call("conversations.setTopic", lambda c: c.conversations_setTopic(
            channel=room, topic=slack_text(topic)[:TOPIC_MAX]))
        self.invite(room, invite)
        return room

    def invite(self, room: str, accounts: list[str]) -> None:
        """Invite Slack user ids; those already there are no failure (``force``: one
        id Slack refuses does not keep the others out)."""
        if not accounts:
            return
        self._call("conversations.invite", lambda c: c.conversations_invite(
            channel=room, users=sorted(set(accounts)), force=True),
            fine=("already_in_channel", "cant_invite_self"))

    def post(self, room: str, text: str, *, buttons: bool | None = None,
             to: str | None = None) -> None:
        """A line in the channel. A PAGE line carries an Acknowledge button (unless
        ``buttons`` is False, or the chat was made without them); ``to``: only that
        Slack user sees it (an ephemeral message: a refusal is nobody else's)."""
        line = slack_text(text)
        if to is not None:
            self._call("chat.postEphemeral", lambda c: c.chat_postEphemeral(
                channel=room, user=to, text=line))
            return
        with_buttons = self.buttons if buttons is None else buttons
        blocks = page_blocks(line) if with_buttons and line.startswith("PAGE") else None
        self._call("chat.postMessage", lambda c: c.chat_postMessage(
            channel=room, text=line, blocks=blocks))

    def close_room(self, room: str, name: str, text: str) -> None:
        """Say the incident is over, then archive the channel: it stays readable as the
        record, and nobody posts in it by mistake."""
        self.post(room, text)
        self._call("conversations.archive", lambda c: c.conversations_archive(channel=room),
                   fine=("already_archived",))

    def history(self, room: str, limit: int) -> list[Message]:
        """``conversations.history``: newest first there, oldest first here; read for
        the incident page, so a Slack that does not answer costs it
        ``HISTORY_TIMEOUT_S`` at most (``ChatDown``), as a homeserver's does."""
        found = self._call("conversations.history", lambda c: self._reader
                           .conversations_history(channel=room, limit=limit))
        return [Message(str(m.get("ts")), room, str(m.get("user") or m.get("bot_id") or ""),
                        str(m.get("text") or ""), int(float(m.get("ts") or 0) * 1e9))
                for m in reversed(found.get("messages") or [])]

    def receive(self, timeout_s: float) -> list[Message]:
        """[]: Slack pushes to ``gameday serve`` instead. It waits ``timeout_s`` (or
        until ``close``) all the same, so the relay's loop keeps its pace."""
        self._closed.wait(timeout_s)
        return []

    def close(self) -> None:
        self._closed.set()

    # -- calls ----------------------------------------------------------------------------
    def _call(self, what: str, call: Callable[[WebClient], Any], *,
              fine: tuple[str, ...] = ()) -> dict[str, Any]:
        """One Web API call and its answer. Slack's refusal is ``ChatDown`` naming its
        error code, unless the code is in ``fine`` (the job was done already); a Slack
        that cannot be reached is ``ChatDown`` naming what went wrong."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            data = call(self._client).data
        except SlackApiError as exc:
            answer = exc.response.data if isinstance(exc.response.data, dict) else {}
            error = str(answer.get("error") or f"HTTP {exc.response.status_code}")
            if error in fine:
                return {"ok": True, "error": error}
            raise ChatDown(self._scrub(f"slack {what}: {error}")) from None
        except (SlackClientError, OSError, ValueError) as exc:
            raise ChatDown(self._scrub(f"slack {what}: {type(exc).__name__}: {exc}")) from None
        return dict(data) if isinstance(data, dict) else {}

    def _find(self, channel: str) -> str:
        """The id of the public channel named ``channel`` (``conversations.list``, a page
        at a time)."""
        cursor = ""
        for _ in range(50):
            page = self._channels(cursor)
            for found in page.get("channels") or []:
                if found.get("name") == channel:
                    return str(found["id"])
            cursor = str((page.get("response_metadata") or {}).get("next_cursor") or "")
            if not cursor:
                break
        raise ChatDown(f"slack conversations.create: #{channel} is taken, and not by an "
                       "open channel gameday can see")

    def _channels(self, cursor: str) -> dict[str, Any]:
        return self._call("conversations.list", lambda c: c.conversations_list(
            types="public_channel", exclude_archived=True, limit=200, cursor=cursor))

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text


# -- what Slack pushes ------------------------------------------------------------------
def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Raise ``Unsigned`` unless ``body`` is signed with the app's signing secret
    (``X-Slack-Signature``, over ``v0:TIMESTAMP:BODY``) at a time no more than five
    minutes from ``now`` (``X-Slack-Request-Timestamp``): anyone can reach the URL,
    only Slack knows the secret, and a replayed request is refused once it is old."""
    from slack_sdk.signature import Clock, SignatureVerifier

    given = {k.lower(): v for k, v in headers.items()}
    signature = given.get("x-slack-signature")
    stamp = given.get("x-slack-request-timestamp")
    if not signature or not stamp:
        raise Unsigned("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    if not stamp.isdigit() or len(stamp) > 12:
        raise Unsigned("X-Slack-Request-Timestamp is not a time")
    if abs(now - int(stamp)) > MAX_AGE_S:
        raise Unsigned("the request is older than 5 minutes (or from the future)")
    if not secret.strip():
        raise Unsigned("no signing secret is set")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unsigned("the body is not UTF-8") from None

    class At(Clock):  # the verifier's own window, read at the same ``now``
        def now(self) -> float:
            return now

    if not SignatureVerifier(secret, clock=At()).is_valid(body, stamp, signature):
        raise Unsigned("the signature does not match")


def message_from_command(form: Mapping[str, str]) -> Message:
    """A slash command (``/gameday ack``) as a room's message: its text becomes
    ``/gameday TEXT`` whatever the command is called in the workspace, so
    ``commands.parse`` reads it; its ``trigger_id`` (one per invocation) is the id a
    message is acted on once by. A slash command carries no timestamp of its own:
    it is dated now, when gameday receives it, which Slack does at once (a request
    older than five minutes is refused by ``verify``)."""
    account, room, trigger = (_form_field(form, f) for f in ("user_id", "channel_id",
                                                              "trigger_id"))
    _form_field(form, "command")
    text = str(form.get("text") or "").strip()
    return Message(id=trigger, room=room, account=account, text=f"{PREFIX} {text}".strip(),
                   at_epoch_ns=clock.epoch_ns())


def message_from_action(payload: Mapping[str, Any]) -> Message:
    """A click on a button gameday posted (a ``block_actions`` payload) as a room's
    message: the button's ``value`` is the command (the page's Acknowledge is
    ``ack``), dated by the action's own ``action_ts``, and acted on once by the
    message it was on and that moment."""
    if payload.get("type") != "block_actions":
        raise ValidationError("only block_actions (a button gameday posted) is taken",
                              field="payload.type")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise ValidationError("no action", field="payload.actions")
    action = actions[0]
    value = _json_field(action, "value", "payload.actions[0].value")
    if action.get("action_id") != ACK_ACTION or value != "ack":  # only the button we post
        raise ValidationError("not a button gameday posted", field="payload.actions[0]")
    at = _json_field(action, "action_ts", "payload.actions[0].action_ts")
    user = _json_field(payload.get("user"), "id", "payload.user.id")
    channel = _json_field(payload.get("channel"), "id", "payload.channel.id")
    message_ts = _json_field(payload.get("container"), "message_ts",
                             "payload.container.message_ts")
    return Message(id=f"{message_ts}/{at}", room=channel, account=user,
                   text=f"{PREFIX} {value}", at_epoch_ns=epoch_ns(at, "payload.actions[0]"
                                                                 ".action_ts"))


def epoch_ns(ts: str, field: str) -> int:
    """Slack's ``1548426417.840180`` (seconds, a decimal string) in nanoseconds, exact."""
    seconds, _, fraction = ts.partition(".")
    if not seconds.isdigit() or len(seconds) > 12 or (fraction and not fraction.isdigit()):
        raise ValidationError(f"not a Slack timestamp: {ts[:40]!r}", field=field)
    return int(seconds) * 10**9 + int((fraction or "0").ljust(9, "0")[:9])


def _form_field(form: Mapping[str, str], name: str) -> str:
    value = str(form.get(name) or "").strip()
    if not value:
        raise ValidationError("missing", field=name)
    return value


def _json_field(data: Any, name: str, field: str) -> str:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("missing, or not a string", field=field)
    return value.strip()
