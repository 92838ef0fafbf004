"""Matrix, through matrix-nio: an open protocol teams host themselves (Synapse is its
reference server). gameday signs in as one account (``[chat] user``, its access token
from the environment or a file), makes a private room per incident, invites the people
linked to Matrix accounts, posts plain-text lines, and reads what is said in its rooms
with ``/sync``: each message's sender is the account the homeserver vouches for, and its
``origin_server_ts`` is when it was said.

matrix-nio is asyncio; the relay is a thread. The client lives on an event loop of its
own (a daemon thread), and each call here waits for its coroutine with a timeout, so a
homeserver that hangs never hangs ``gameday serve``: the call raises ``ChatDown``.
Encryption is off: incident rooms are for the team's own homeserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from gameday.chat.base import HISTORY_TIMEOUT_S, ChatDown, Message
from gameday.chat.config import ChatConfig

T = TypeVar("T")
CALL_TIMEOUT_S = 15.0
DEVICE = "GAMEDAY"
MENTION = re.compile(r"@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(?::[0-9]{1,5})?")


class MatrixChat:
    kind = "matrix"

    def __init__(self, config: ChatConfig, token: str) -> None:
        assert config.homeserver and config.user
        self.homeserver, self.user, self._token = config.homeserver, config.user, token
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="matrix",
                                        daemon=True)
        self._thread.start()
        self._client: Any = None
        self._since: str | None = None
        self._making: asyncio.Lock | None = None  # one client, whichever thread asks first

    # -- plumbing -----------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise ChatDown(f"{self.homeserver} did not answer within {timeout:g} s") from None
        except ChatDown:
            raise
        except Exception as exc:  # aiohttp's, the homeserver's: the chat is down
            raise ChatDown(f"{self.homeserver}: {type(exc).__name__}: {exc}") from None

    async def _client_ready(self) -> Any:
        """The signed-in client, made on first use (a homeserver down at start-up is
        tried again on the next call); its first sync only marks where reading
        starts: what was said before gameday listened is not a command."""
        if self._making is None:
            self._making = asyncio.Lock()  # made on the client's own loop
        async with self._making:
            return await self._make_client()

    async def _make_client(self) -> Any:
        if self._client is None:
            from nio import AsyncClient, AsyncClientConfig

            # no retry loops of its own (nio retries a 429 or a timeout forever): a call
            # that fails is the relay's to try again
            client = AsyncClient(self.homeserver, self.user, config=AsyncClientConfig(
                encryption_enabled=False, max_limit_exceeded=0, max_timeouts=0))
            client.restore_login(self.user, DEVICE, self._token)
            try:
                first = await client.sync(timeout=0, full_state=False)
            except BaseException:
                await client.close()  # its connections, before trying again later
                raise
            since = getattr(first, "next_batch", None)
            if since is None:
                await client.close()
                raise ChatDown(f"{self.homeserver} refused gameday's sync: "
                               f"{getattr(first, 'message', first)}")
            self._client, self._since = client, since
        return self._client

    @staticmethod
    def _ok(response: Any, what: str) -> Any:
        from nio import ErrorResponse

        if isinstance(response, ErrorResponse):
            raise ChatDown(f"{what}: {response.status_code} {response.message}")
        return response

    # -- the Chat interface ---------------------------------------------------------------
    def open_room(self, name: str, topic: str, invite: list[str]) -> str:
        async def make() -> str:
            from nio import RoomPreset, RoomVisibility

            client = await self._client_ready()
            made = self._ok(await client.room_create(
                visibility=RoomVisibility.private, name=name, topic=topic,
                preset=RoomPreset.private_chat, invite=invite), f"room {name!r}")
            return str(made.room_id)

        return self._call(make())

    def invite(self, room: str, accounts: list[str]) -> None:
        async def invite() -> None:
            client = await self._client_ready()
            for account in accounts:
                await client.room_invite(room, account)  # one already there: no matter

        self._call(invite())

    def post(self, room: str, text: str) -> None:
        async def send() -> None:
            client = await self._client_ready()
            self._ok(await client.room_send(room, "m.room.message", {
                "msgtype": "m.text", "body": text,
                # who it notifies, said outright: the accounts a page names, nobody
                # else (not the whole room, whatever a relayed line contains)
                "m.mentions": {"user_ids": MENTION.findall(text)
                               if text.startswith("PAGE") else []}}),
                     f"a message to {room}")

        self._call(send())

    def close_room(self, room: str, name: str, text: str) -> None:
        async def close() -> None:
            client = await self._client_ready()
            self._ok(await client.room_send(room, "m.room.message",
                                            {"msgtype": "m.notice", "body": text}),
                     f"a message to {room}")
            self._ok(await client.room_put_state(room, "m.room.name", {"name": name}),
                     f"renaming {room}")

        self._call(close())

    def history(self, room: str, limit: int) -> list[Message]:
        async def back() -> list[Message]:
            from nio import MessageDirection, RoomMessageNotice, RoomMessageText

            client = await self._client_ready()
            found = self._ok(await client.room_messages(
                room, start=None, direction=MessageDirection.back, limit=limit),
                f"the history of {room}")
            return [Message(e.event_id, room, e.sender, e.body, e.server_timestamp * 1_000_000)
                    for e in reversed(found.chunk)
                    if isinstance(e, RoomMessageText | RoomMessageNotice)]

        return self._call(back(), timeout=HISTORY_TIMEOUT_S)

    def receive(self, timeout_s: float) -> list[Message]:
        async def sync() -> list[Message]:
            from nio import RoomMessageText

            client = await self._client_ready()
            found = self._ok(await client.sync(timeout=int(timeout_s * 1000),
                                               since=self._since, full_state=False), "sync")
            self._since = found.next_batch
            said = []
            for room_id, room in found.rooms.join.items():
                for event in room.timeline.events:
                    if isinstance(event, RoomMessageText) and event.sender != self.user:
                        said.append(Message(event.event_id, room_id, event.sender,
                                            event.body, event.server_timestamp * 1_000_000))
            return said

        return self._call(sync(), timeout=timeout_s + CALL_TIMEOUT_S)

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(ChatDown):
                self._call(self._client.close(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()
