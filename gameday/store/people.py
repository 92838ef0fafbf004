"""People: their hashed tokens, roles, rotation and revocation.
"""

from __future__ import annotations

from typing import cast

from gameday.core.errors import GamedayError
from gameday.store.base import (
    Database,
    utc_now,
)
from gameday.store.rows import UserRow


class PeopleStore(Database):
    # -- people ---------------------------------------------------------------------------
    def add_user(self, name: str, role: str, token_sha256: str, created_by: str) -> bool:
        """Add a person, or give one who was revoked a new token and role (True: they
        were there before; the audit log keeps what happened in between). An active
        person is refused."""
        with self._tx() as db:
            before = db.execute("SELECT revoked_at FROM users WHERE name = ?",
                                (name,)).fetchone()
            row = db.execute(
                "INSERT INTO users (name, role, token_sha256, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " role = excluded.role, token_sha256 = excluded.token_sha256,"
                " created_at = excluded.created_at, created_by = excluded.created_by,"
                " revoked_at = NULL WHERE users.revoked_at IS NOT NULL RETURNING name",
                (name, role, token_sha256, utc_now(), created_by)).fetchone()
            if row is None:
                raise GamedayError(f"there is already a user {name} (gameday user rotate "
                                   f"{name} gives them a new token; gameday user role "
                                   f"{name} ROLE changes their role)")
            return before is not None

    def rotate_user(self, name: str, token_sha256: str) -> bool:
        """A new token for an active person: the old one, and the sessions it made, stop
        working at once."""
        with self._tx() as db:
            return db.execute("UPDATE users SET token_sha256 = ? WHERE name = ? AND"
                              " revoked_at IS NULL", (token_sha256, name)).rowcount == 1

    def set_user_role(self, name: str, role: str) -> str | None:
        """Change an active person's role (their sessions follow at once); the role they
        had, or None if there is no such person."""
        with self._tx() as db:
            row = db.execute("SELECT role FROM users WHERE name = ? AND revoked_at IS NULL",
                             (name,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE users SET role = ? WHERE name = ?", (role, name))
            return str(row[0])

    def user_by_token(self, token_sha256: str) -> UserRow | None:
        row = self._db.execute("SELECT * FROM users WHERE token_sha256 = ? AND"
                               " revoked_at IS NULL", (token_sha256,)).fetchone()
        return cast(UserRow, dict(row)) if row else None

    def user(self, name: str) -> UserRow | None:
        """An active user by name (None if there is none, or they were revoked)."""
        row = self._db.execute("SELECT * FROM users WHERE name = ? AND revoked_at IS NULL",
                               (name,)).fetchone()
        return cast(UserRow, dict(row)) if row else None

    def person(self, name: str) -> UserRow | None:
        """A user by name, revoked or not, without their token's hash (None: nobody
        gameday knows by that name, such as the shared token or automation)."""
        row = self._db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return cast(UserRow, {k: row[k] for k in row.keys() if k != "token_sha256"}) \
            if row else None  # noqa: SIM118

    def users(self) -> list[UserRow]:
        """Everyone, without their token's hash."""
        return [cast(UserRow, {k: r[k] for k in r.keys() if k != "token_sha256"})  # noqa: SIM118
                for r in self._db.execute("SELECT * FROM users ORDER BY name")]

    def has_users(self) -> bool:
        return self._db.execute("SELECT 1 FROM users WHERE revoked_at IS NULL"
                                " LIMIT 1").fetchone() is not None

    def revoke_user(self, name: str) -> bool:
        """Their token and sessions end, and their chat accounts are theirs no more."""
        with self._tx() as db:
            db.execute("DELETE FROM chat_accounts WHERE person = ?", (name,))
            return db.execute("UPDATE users SET revoked_at = ? WHERE name = ? AND"
                              " revoked_at IS NULL", (utc_now(), name)).rowcount == 1
