"""Who is asking: a bearer token, an HMAC-signed webhook, or a signed session cookie.

The token is compared in constant time. A browser signs in once with the token and a
name and gets a session cookie (HMAC-signed, HttpOnly, SameSite=Strict); every form
that runs something carries a CSRF token derived from that session.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SESSION_COOKIE = "gameday_session"
SESSION_TTL_S = 12 * 3600
SIGNATURE_HEADER = "X-Gameday-Signature"


class Unauthorized(Exception):
    """No credentials: 401."""


class Forbidden(Exception):
    """Wrong credentials: 403."""


class Auth:
    def __init__(self, token: str):
        if len(token) < 16:
            raise ValueError("the token must be at least 16 characters")
        self._token = token.encode()
        self._key = hashlib.sha256(b"gameday-session|" + self._token).digest()

    def check_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def check_signature(self, body: bytes, header: str) -> bool:
        expected = "sha256=" + hmac.new(self._token, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header.encode(), expected.encode())

    def identify(self, headers, cookies, body: bytes | None = None) -> str:
        """The caller's identity, or Unauthorized / Forbidden."""
        header = headers.get("authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not self.check_token(value.strip()):
                raise Forbidden()
            return "token"
        signature = headers.get(SIGNATURE_HEADER.lower(), "")
        if signature and body is not None:
            if not self.check_signature(body, signature):
                raise Forbidden()
            return "signed-webhook"
        cookie = cookies.get(SESSION_COOKIE)
        if cookie:
            who = self.session_user(cookie)
            if who is None:
                raise Forbidden()
            return who
        raise Unauthorized()

    # -- sessions ---------------------------------------------------------------------
    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def new_session(self, user: str) -> str:
        text = f"{user}|{int(time.time()) + SESSION_TTL_S}|{secrets.token_hex(8)}"
        return f"{text}|{self._sign(text)}"

    def session_user(self, cookie: str) -> str | None:
        text, _, sig = cookie.rpartition("|")
        if not text or not hmac.compare_digest(sig, self._sign(text)):
            return None
        user, expires, _nonce = (text.split("|") + ["", "", ""])[:3]
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return user

    def csrf_token(self, cookie: str) -> str:
        return self._sign("csrf|" + cookie)

    def check_csrf(self, cookie: str | None, given: str) -> bool:
        if not cookie:
            return False
        return hmac.compare_digest(given, self.csrf_token(cookie))
