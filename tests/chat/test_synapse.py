"""The chat harness itself (``tests/chatserver.py``): a real Synapse that real matrix-nio
clients meet in a room, whose rate limits never get in a test's way, and that says so
when it refuses or fails to start."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from chatserver import MatrixError, Synapse, client_config, needs_synapse
from nio import (
    AsyncClient,
    InviteMemberEvent,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

pytestmark = [needs_synapse, pytest.mark.slow]

R = TypeVar("R")


def ok(response: object, kind: type[R]) -> R:
    """``response`` if it is a ``kind``; else fail with the error nio got back."""
    assert isinstance(response, kind), f"expected {kind.__name__}, got {response!r}"
    return response


async def sync(client: AsyncClient, until: Callable[[SyncResponse], R | None],
               within: float = 10) -> R:
    """Sync ``client`` (long polls from where it left off) until ``until(response)``
    finds something, and return that."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = ok(await client.sync(timeout=1000), SyncResponse)
        if found := until(response):
            return found
    raise AssertionError(f"{client.user_id} did not see it within {within:g} s")


def test_alice_and_bob_meet_in_a_room(synapse: Synapse):
    alice_id, alice_password = synapse.register("smoke-alice")
    bob_id, bob_password = synapse.register("smoke-bob")
    # bob as a client given a token (the harness's login); alice logs in through nio
    bob_token = synapse.login("smoke-bob", bob_password)

    async def meet() -> tuple[RoomMessageText, int, int]:
        alice = AsyncClient(synapse.base_url, alice_id, config=client_config())
        bob = AsyncClient(synapse.base_url, bob_id, config=client_config())
        bob.access_token = bob_token
        try:
            ok(await alice.login(alice_password), LoginResponse)
            ok(await bob.sync(timeout=0), SyncResponse)  # bob is up to date

            room = ok(await alice.room_create(name="INC-1 checkout down"), RoomCreateResponse)
            ok(await alice.room_invite(room.room_id, bob_id), RoomInviteResponse)

            def invited(response: SyncResponse) -> bool:
                invite = response.rooms.invite.get(room.room_id)
                return invite is not None and any(
                    isinstance(e, InviteMemberEvent) and e.state_key == bob_id
                    for e in invite.invite_state)

            await sync(bob, invited)
            ok(await bob.join(room.room_id), JoinResponse)

            before_ms = int(time.time() * 1000)
            sent = ok(await alice.room_send(
                room.room_id, "m.room.message",
                {"msgtype": "m.text", "body": "SEV-2 declared: checkout down"}), RoomSendResponse)
            after_ms = int(time.time() * 1000) + 1

            def message(response: SyncResponse) -> RoomMessageText | None:
                joined = response.rooms.join.get(room.room_id)
                events = joined.timeline.events if joined else []
                return next((e for e in events if e.event_id == sent.event_id), None)

            return await sync(bob, message), before_ms, after_ms
        finally:
            await alice.close()
            await bob.close()

    seen, before_ms, after_ms = asyncio.run(meet())
    assert isinstance(seen, RoomMessageText)
    assert (seen.sender, seen.body) == (alice_id, "SEV-2 declared: checkout down")
    # the server's clock, in ms since the epoch, stamped while alice's send was under way
    assert before_ms <= seen.server_timestamp <= after_ms


def test_refusals_are_errors(synapse: Synapse):
    user_id, password = synapse.register("twice", "first password")
    assert user_id == "@twice:localhost"

    with pytest.raises(MatrixError, match="M_USER_IN_USE") as taken:
        synapse.register("twice")
    assert (taken.value.status, taken.value.errcode) == (400, "M_USER_IN_USE")
    assert "/_synapse/admin/v1/register" in str(taken.value)

    with pytest.raises(MatrixError) as wrong:
        synapse.login("twice", "not the password")
    assert (wrong.value.status, wrong.value.errcode) == (403, "M_FORBIDDEN")

    # the first registration stands, with the password it was given
    token = synapse.login("twice", password)
    assert synapse.api("GET", "/_matrix/client/v3/account/whoami",
                       token=token)["user_id"] == user_id


def test_rate_limits_are_out_of_the_way(synapse: Synapse):
    """Past each of Synapse's default bursts (5 logins per address and per account, 10
    rooms, 5 invites per invitee, 10 joins, 10 messages), which would answer 429: Synapse
    ignores configuration keys it does not know, so a misspelt limit shows only here."""
    alice_id, alice_password = synapse.register("limits-alice")
    bob_id, bob_password = synapse.register("limits-bob")
    tokens = [synapse.login("limits-alice", alice_password) for _ in range(7)]
    alice, bob = tokens[-1], synapse.login("limits-bob", bob_password)

    rooms = [synapse.api("POST", "/_matrix/client/v3/createRoom", {}, token=alice)["room_id"]
             for _ in range(12)]
    for room_id in rooms:  # (an invite in createRoom's own request is not limited)
        synapse.api("POST", f"/_matrix/client/v3/rooms/{room_id}/invite",
                    {"user_id": bob_id}, token=alice)
        synapse.api("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=bob)
    for n in range(12):
        synapse.api("PUT", f"/_matrix/client/v3/rooms/{rooms[0]}/send/m.room.message/t{n}",
                    {"msgtype": "m.text", "body": f"update {n}"}, token=bob)


def test_a_start_that_fails_says_why(tmp_path: Path):
    """Another server on the port: the harness raises with Synapse's own words, rather
    than taking that server's answers for its own."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match="exited with 1") as failed:
            Synapse(tmp_path / "synapse", port=port)
    assert "Address already in use" in str(failed.value)
    assert (tmp_path / "synapse" / "homeserver.log").exists()
