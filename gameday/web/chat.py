"""What Slack pushes to ``gameday serve``: the ``/gameday`` slash command and the
buttons gameday posts (the page's Acknowledge), as Slack's app settings point them:

``POST /api/v1/chat/slack/commands``  a slash command (form-encoded)
``POST /api/v1/chat/slack/actions``   an interactive payload (form field ``payload``,
                                       JSON)

Both are checked against the app's signing secret (the environment variable
``[chat] signing_secret_env`` names) over the raw body before anything in it is read:
a bad, missing or old signature is a 401 and changes nothing. What is left becomes a
room's message and goes through the relay as any chat's message does; the answer is
Slack's: a slash command's reply is the response body (seen by the channel, or by the
person alone when refused), a button's reply is posted to the channel once Slack has
had its empty 200 (Slack wants an answer within three seconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gameday.chat.base import ChatDown, Message
from gameday.chat.slack import (
    SlackChat,
    Unsigned,
    message_from_action,
    message_from_command,
    verify,
)
from gameday.core import clock
from gameday.core.errors import NotFound, ValidationError
from gameday.web.context import read_body, shared

if TYPE_CHECKING:
    from gameday.chat.relay import Relay

log = logging.getLogger(__name__)
NOT_A_ROOM = "this channel is not an incident's room"
ANSWER_WITHIN_S = 2.5  # Slack gives a slash command 3 s
REFUSED = "refused:"


async def slack_commands(request: Request) -> Response:
    """A slash command: 200 with Slack's ``response_type`` and the reply, or an empty
    200 when there is nothing to say (another replica answered it)."""
    checked = await _signed(request)
    if isinstance(checked, Response):
        return checked
    relay, body = checked
    try:
        form = _form(body)
        if form.get("ssl_check") == "1":  # Slack checking the certificate: no command
            return Response(status_code=200)
        message = message_from_command(form)
    except ValidationError as exc:
        return _bad(exc)
    move = asyncio.ensure_future(asyncio.to_thread(_handle, relay, message))
    try:  # Slack waits 3 s for the answer: the move goes on past that, answered later
        said = await asyncio.wait_for(asyncio.shield(move), ANSWER_WITHIN_S)
    except TimeoutError:
        move.add_done_callback(lambda done: _late(relay, message, done))
        return JSONResponse({"response_type": "ephemeral",
                             "text": "working on it: the answer comes in the channel"})
    if said is None:
        return Response(status_code=200)
    text, refused = said
    return JSONResponse({"response_type": "ephemeral" if refused else "in_channel",
                         "text": text})


def _late(relay: Relay, message: Message, done: asyncio.Future[Any]) -> None:
    """A slash command's answer after Slack stopped waiting: posted as a button's is."""
    said = None if done.cancelled() or done.exception() else done.result()
    if said is not None:
        threading.Thread(target=_reply, args=(relay, message, *said), daemon=True).start()


async def slack_actions(request: Request) -> Response:
    """A button: an empty 200 at once; the reply goes to the channel afterwards (a
    refusal to the person who clicked alone)."""
    checked = await _signed(request)
    if isinstance(checked, Response):
        return checked
    relay, body = checked
    try:
        message = message_from_action(_payload(_form(body)))
    except ValidationError as exc:
        return _bad(exc)
    return Response(status_code=200, background=BackgroundTask(_act, relay, message))


def _act(relay: Relay, message: Message) -> None:
    """A button's move, once Slack has had its 200, and its reply."""
    said = _handle(relay, message)
    if said is not None:
        _reply(relay, message, *said)


async def _signed(request: Request) -> tuple[Relay, bytes] | Response:
    """The server's Slack relay and the raw body, once its signature holds; else the
    401 that says why (a 404 when the project has no Slack chat)."""
    relay = shared(request).relay
    if relay is None or relay.config.kind != "slack":
        raise NotFound("no chat configured" if relay is None else "no Slack chat configured")
    body = await read_body(request)
    secret = relay.signing_secret
    try:
        verify(secret, request.headers, body, clock.epoch())
    except Unsigned as exc:
        if not secret.strip():
            log.warning("chat: Slack's requests cannot be checked: set %s",
                        relay.config.signing_secret_env)
        return JSONResponse({"error": f"not signed by Slack: {exc}"}, status_code=401)
    return relay, body


def _handle(relay: Relay, message: Message) -> tuple[str, bool] | None:
    """The relay's reply and whether it is a refusal (said to the person alone); a
    channel that is no incident's room is told so."""
    if relay.store.chat_room_by_id(message.room) is None:
        return NOT_A_ROOM, True
    reply = relay.handle(message)
    return None if reply is None else (reply, reply.startswith(REFUSED))


def _reply(relay: Relay, message: Message, text: str, refused: bool) -> None:
    """A button's reply, in the channel (a refusal: to the person who clicked alone);
    a Slack that does not answer loses the line, not the move."""
    try:
        if refused and isinstance(relay.chat, SlackChat):
            relay.chat.post(message.room, text, to=message.account)
        else:
            relay.chat.post(message.room, text)
    except ChatDown as exc:
        log.warning("chat: a reply was not posted: %s", exc)


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("the body is not UTF-8", field="body") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def _payload(form: dict[str, str]) -> dict[str, Any]:
    try:
        payload = json.loads(form.get("payload") or "")
    except (ValueError, RecursionError):
        raise ValidationError("missing, or not JSON", field="payload") from None
    if not isinstance(payload, dict):
        raise ValidationError("not a JSON object", field="payload")
    return payload


def _bad(exc: ValidationError) -> Response:
    return JSONResponse({"error": f"{exc.field}: {exc.message}", "field": exc.field},
                        status_code=400)
