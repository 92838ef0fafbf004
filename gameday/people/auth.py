"""Who is asking, and what they may do.

Identities, strongest first:

- a trusted reverse proxy's user header (oauth2-proxy style single sign-on:
  ``--trusted-user-header X-Forwarded-User``), believed only from the configured proxy
  addresses, and only for a known user;
- a bearer token: a person's own (``gameday user add``; stored as its SHA-256, revocable)
  or the server's shared token (``admin``: scripts and single-user setups);
- an HMAC-signed webhook body (Alertmanager: it may post alerts, nothing else);
- a session cookie (HMAC-signed, HttpOnly, SameSite=Strict) from signing in once with
  a personal token (or, while nobody has one, with the shared token and a name). Every
  form that runs something carries a CSRF token derived from that session.

What each access role may do is the policy's (``policy.may``). Tokens are compared in
constant time (the shared one) or looked up by their hash (personal ones: 256 random
bits, so a plain SHA-256 is what a password hash would be for a weak secret).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gameday.core import clock
from gameday.core.errors import ValidationError
from gameday.core.policy import may
from gameday.store.rows import UserRow

if TYPE_CHECKING:
    from gameday.store import Store

SESSION_COOKIE = "gameday_session"
SESSION_TTL_S = 12 * 3600
SIGNATURE_HEADER = "X-Gameday-Signature"
TOKEN_PREFIX = "gd_"
# Who gameday itself acts as, never a person gameday knows (``gameday user add`` refuses
# them): the shared token, the signed webhook, and the intake (``runs.intake.ACTOR``).
NOT_PEOPLE = frozenset({"token", "signed-webhook", "alertmanager"})


class Unauthorized(Exception):
    """No credentials: 401."""


class Forbidden(Exception):
    """Wrong credentials, or not allowed: 403."""


@dataclass(frozen=True)
class Identity:
    """Who is asking: ``name`` as the timeline and the audit log record it, ``role``
    (``policy.ACCESS_ROLES``, or ``webhook``) and how they proved it."""

    name: str
    role: str
    via: str   # proxy | user-token | token | webhook | session

    def may(self, permission: str) -> bool:
        if permission == "alerts":  # Alertmanager (signed, or with the shared token)
            return self.role == "webhook" or (self.role == "admin" and self.via in (
                "token", "user-token"))
        return self.role != "webhook" and may(self.role, permission)


def new_token() -> str:
    """A person's API token: shown once, stored only as ``token_sha256``."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class BadSetting(ValidationError, ValueError):
    """An identity setting of ``gameday serve`` that cannot work: refused before it
    listens (exit 2), naming the option."""


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise BadSetting(f"{value!r} is not an address or network",
                         field="--trusted-proxy") from None


class Auth:
    """Who is asking (``identify``), from the one set of rules every view and replica
    uses; its settings are checked here, once (``gameday serve`` and ``create_app``)."""

    def __init__(self, token: str, store: Store | None = None, *,
                 user_header: str | None = None, trusted_proxies: Iterable[str] = ()):
        if len(token) < 16:
            raise BadSetting("use at least 16 characters", field="--token")
        self._token = token.encode()
        self._key = hashlib.sha256(b"gameday-session|" + self._token).digest()
        self.store = store
        self.user_header = user_header.lower() if user_header else None
        self.proxies = tuple(_network(p) for p in trusted_proxies)
        if self.user_header and not self.proxies:
            raise BadSetting("name the proxies it is trusted from (--trusted-proxy)",
                             field="--trusted-user-header")
        if self.proxies and not self.user_header:
            raise BadSetting("trusts a proxy for nothing: name the header it sets "
                             "(--trusted-user-header)", field="--trusted-proxy")

    def _trusted(self, client: str | None) -> bool:
        try:
            address = ipaddress.ip_address(client or "")
        except ValueError:
            return False
        return any(address in net for net in self.proxies)

    def _user(self, name: str) -> UserRow | None:
        return self.store.user(name) if self.store is not None else None

    def personal(self) -> bool:
        """Whether people have their own identities (anyone added with ``gameday user
        add``): then the shared token no longer signs people in, and destructive runs
        need a second person."""
        return self.store is not None and self.store.has_users()

    def sign_in(self, token: str, name: str) -> Identity | None:
        """A person signing in: with their own token (their name is the store's), or,
        while nobody has one, with the shared token and the name they give."""
        if token.startswith(TOKEN_PREFIX) and self.store is not None:
            user = self.store.user_by_token(token_sha256(token))
            return Identity(str(user["name"]), str(user["role"]), "user-token") if user \
                else None
        if self.check_token(token) and not self.personal():
            return Identity(name, "admin", "session")
        return None

    def check_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def check_signature(self, body: bytes, header: str) -> bool:
        expected = "sha256=" + hmac.new(self._token, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header.encode(), expected.encode())

    def identify(self, headers: Mapping[str, str], cookies: Mapping[str, str],
                 body: bytes | None = None, client: str | None = None) -> Identity:
        """The caller's identity, or Unauthorized / Forbidden."""
        if self.user_header and self._trusted(client):
            name = headers.get(self.user_header, "")
            if name:
                user = self._user(name)
                if user is None:
                    raise Forbidden(f"{name[:64]} is not a gameday user (gameday user add)")
                return Identity(name, str(user["role"]), "proxy")
        header = headers.get("authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            value = value.strip()
            if scheme.lower() == "bearer" and self.check_token(value):
                return Identity("token", "admin", "token")
            if scheme.lower() == "bearer" and value.startswith(TOKEN_PREFIX) and self.store:
                user = self.store.user_by_token(token_sha256(value))
                if user is not None:
                    return Identity(str(user["name"]), str(user["role"]), "user-token")
            raise Forbidden()
        signature = headers.get(SIGNATURE_HEADER.lower(), "")
        if signature and body is not None:
            if not self.check_signature(body, signature):
                raise Forbidden()
            return Identity("signed-webhook", "webhook", "webhook")
        cookie = cookies.get(SESSION_COOKIE)
        if cookie:
            found = self.session(cookie)
            if found is None:
                raise Forbidden()
            who, personal, stamp = found
            if personal:  # the person's rights, as the store has them now
                user = self._user(who)
                # revoked, or their token changed since (rotated, or revoked and added
                # again): the sessions it made end with it
                if user is None or not hmac.compare_digest(stamp, self._stamp(user)):
                    raise Forbidden()
                return Identity(who, str(user["role"]), "session")
            if self.personal():  # signed in with the shared token before people had theirs
                raise Forbidden()
            return Identity(who, "admin", "session")
        raise Unauthorized()

    # -- sessions ---------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def _stamp(self, user: Mapping[str, object]) -> str:
        """What ties a personal session to the token it was made with (a keyed digest of
        the token's hash: the cookie says nothing about the token)."""
        return self._sign(f"stamp|{user['token_sha256']}")[:32]

    def new_session(self, user: str, personal: bool = False) -> str:
        """A signed session: who, until when, and whether a personal token made it (such a
        session never falls back to the shared token's rights, and ends when that token
        is revoked or rotated)."""
        kind, stamp = "shared", ""
        if personal:
            found = self._user(user)
            if found is None:
                raise Forbidden()
            kind, stamp = "personal", self._stamp(found)
        text = (f"{user}|{int(clock.epoch()) + SESSION_TTL_S}|{secrets.token_hex(8)}|{kind}"
                f"|{stamp}")
        return f"{text}|{self._sign(text)}"

    def session(self, cookie: str) -> tuple[str, bool, str] | None:
        """``(user, personal, stamp)`` of a valid session cookie, else None."""
        text, _, sig = cookie.rpartition("|")
        if not text or not hmac.compare_digest(sig, self._sign(text)):
            return None
        user, expires, _nonce, kind, stamp = (text.split("|") + [""] * 5)[:5]
        if not expires.isdigit() or int(expires) < clock.epoch():
            return None
        return user, kind == "personal", stamp

    def csrf_token(self, cookie: str) -> str:
        return self._sign("csrf|" + cookie)
