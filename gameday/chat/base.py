"""The one interface a chat implements for gameday (docs/extending.md: adding a chat).

A chat makes rooms, invites people, posts lines, marks a room when its incident is
over, and hands gameday what people said in its rooms (``receive``; a chat that pushes
messages to gameday over HTTP, as Slack does, hands them to ``Relay.handle`` instead).
Calls are synchronous (the relay runs on its own thread); one that fails raises
``ChatDown``: the relay records it and tries again, and no game day ever waits on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# How long the incident page waits for a room's history, at most, whatever the chat: a
# chat that takes the connection and says nothing costs the page this, and no more.
HISTORY_TIMEOUT_S = 4.0


class ChatDown(Exception):
    """The chat did not answer or refused: recorded, retried, never fatal."""


@dataclass(frozen=True)
class Message:
    """Something a person said in a room."""

    id: str           # unique in its chat (an event id, a Slack trigger)
    room: str         # the room (channel) it was said in
    account: str      # who said it: the chat's own account id, never a typed name
    text: str
    at_epoch_ns: int  # when, on the chat server's clock


class Chat(Protocol):
    kind: str

    def open_room(self, name: str, topic: str, invite: list[str]) -> str:
        """Make a room named ``name``, invite the accounts; its id."""

    def invite(self, room: str, accounts: list[str]) -> None:
        """Invite more accounts (people paged later)."""

    def post(self, room: str, text: str) -> None:
        """A line in the room."""

    def close_room(self, room: str, name: str, text: str) -> None:
        """The incident is over: say so, rename (or archive) the room."""

    def history(self, room: str, limit: int) -> list[Message]:
        """The room's last ``limit`` messages, oldest first (everyone's, gameday's too):
        what the incident page shows of the room."""

    def receive(self, timeout_s: float) -> list[Message]:
        """What people said in the rooms since the last call (waits up to
        ``timeout_s`` for something); [] for a chat that pushes over HTTP."""

    def close(self) -> None:
        """Let go of connections."""
