"""Incident rooms in chat: which gameday person each chat account is, each incident's
room and how far its timeline has been posted there, and the messages acted on. Every
write that two ``gameday serve`` replicas could race on is a claim the database
decides (an insert that only one wins, a compare-and-set)."""

from __future__ import annotations

from typing import Any

from gameday.core import clock
from gameday.core.states import INCIDENT_ENDED
from gameday.store.base import Database, utc_now

CLAIM_TTL_S = 120.0  # a room being made by a replica that died: another may make it


class ChatStore(Database):
    # -- who is who --------------------------------------------------------------------
    def link_chat_account(self, account: str, person: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM chat_accounts WHERE account = ?", (account,))
            db.execute("INSERT INTO chat_accounts (account, person, added_at)"
                       " VALUES (?, ?, ?)", (account, person, utc_now()))

    def unlink_chat_account(self, account: str, person: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM chat_accounts WHERE account = ? AND person = ?",
                              (account, person)).rowcount == 1

    def chat_person(self, account: str) -> str | None:
        row = self._db.execute("SELECT person FROM chat_accounts WHERE account = ?",
                               (account,)).fetchone()
        return str(row["person"]) if row else None

    def chat_accounts(self, person: str | None = None) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM chat_accounts" + (" WHERE person = ?" if person else "")
            + " ORDER BY person, account", (person,) if person else ())
        return [dict(r) for r in rows]

    # -- rooms --------------------------------------------------------------------------
    def claim_chat_room(self, incident_id: int, chat: str, by: str) -> bool:
        """This replica makes the incident's room: True once, for the first to ask (or
        after a claim whose maker went quiet without making it)."""
        now = clock.epoch()
        with self._tx() as db:
            if db.execute("INSERT INTO chat_rooms (incident_id, chat, state, claimed_by,"
                          " claimed_at) VALUES (?, ?, 'opening', ?, ?) ON CONFLICT DO NOTHING",
                          (incident_id, chat, by, now)).rowcount == 1:
                return True
            return db.execute("UPDATE chat_rooms SET claimed_by = ?, claimed_at = ?"
                              " WHERE incident_id = ? AND state = 'opening'"
                              " AND claimed_at < ?",
                              (by, now, incident_id, now - CLAIM_TTL_S)).rowcount == 1

    def chat_room_made(self, incident_id: int, room: str, by: str) -> bool:
        """The room ``by`` made is the incident's: True unless another replica took the
        claim over meanwhile (its room is the one)."""
        with self._tx() as db:
            return db.execute("UPDATE chat_rooms SET room = ?, state = 'open', error = NULL"
                              " WHERE incident_id = ? AND claimed_by = ? AND state ="
                              " 'opening'", (room, incident_id, by)).rowcount == 1

    def chat_room_failed(self, incident_id: int, error: str) -> None:
        """The room could not be made (the chat server is down): kept on the record,
        tried again once the claim runs out."""
        with self._tx() as db:
            db.execute("UPDATE chat_rooms SET error = ? WHERE incident_id = ?",
                       (error[:500], incident_id))

    def chat_room(self, incident_id: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM chat_rooms WHERE incident_id = ?",
                               (incident_id,)).fetchone()
        return dict(row) if row else None

    def chat_room_by_id(self, room: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT * FROM chat_rooms WHERE room = ?", (room,)).fetchone()
        return dict(row) if row else None

    def chat_incidents(self, since: str) -> list[dict[str, Any]]:
        """Incidents a room is for now: still going and opened since ``since`` (UTC ISO:
        the relay leaves long-forgotten ones alone), or over with their room still
        open."""
        ended = ", ".join(f"'{s}'" for s in sorted(INCIDENT_ENDED))
        return [dict(r) for r in self._db.execute(
            f"SELECT * FROM incidents WHERE (state NOT IN ({ended}) AND created_at >= ?)"
            " OR id IN (SELECT incident_id FROM chat_rooms WHERE state IN ('open',"
            " 'opening', 'closing')) ORDER BY id", (since,))]

    def advance_chat_room(self, incident_id: int, seen: int, to: int, *,
                          storm: str | None, was: str | None) -> bool:
        """Events after ``seen`` up to ``to`` are this replica's to post, with where the
        room then stands in an alert storm (``storm``, the relay's JSON, which was
        ``was``): True once. Both are compared and set together, so a storm's line is
        claimed as an event is."""
        same = "IS NOT DISTINCT FROM" if self.postgres else "IS"
        with self._tx() as db:
            return db.execute("UPDATE chat_rooms SET last_seq = ?, storm = ? WHERE"
                              f" incident_id = ? AND last_seq = ? AND storm {same} ?",
                              (to, storm, incident_id, seen, was)).rowcount == 1

    def claim_chat_close(self, incident_id: int) -> bool:
        """This replica says the incident is over in its room: True once."""
        with self._tx() as db:
            return db.execute("UPDATE chat_rooms SET state = 'closing' WHERE incident_id = ?"
                              " AND state = 'open'", (incident_id,)).rowcount == 1

    def close_chat_room(self, incident_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE chat_rooms SET state = 'closed' WHERE incident_id = ?",
                       (incident_id,))

    # -- messages acted on --------------------------------------------------------------
    def claim_chat_message(self, message: str, incident_id: int | None) -> bool:
        """Act on a room's message once: True for the first to claim it."""
        with self._tx() as db:
            return db.execute("INSERT INTO chat_seen (message, incident_id, seen_at)"
                              " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                              (message, incident_id, utc_now())).rowcount == 1
