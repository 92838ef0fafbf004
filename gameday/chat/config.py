"""``[chat]`` in ``gameday.toml``: which chat, how gameday signs in to it (a token from
the environment or a file, never from the file itself), how rooms are named, who is
invited, what is posted, and whether what people say in a room becomes the scribe's
notes.

.. code-block:: toml

    [chat]
    kind = "matrix"                       # or "slack"
    homeserver = "https://matrix.example.org"
    user = "@gameday:example.org"         # the account gameday posts as
    token_env = "GAMEDAY_CHAT_TOKEN"      # its access token (or token_file = "...")
    room_prefix = "gameday"               # "[DRILL] gameday #12: ..."
    notes = true                          # what people say in a room is a note
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field
from pydantic import ValidationError as PydanticError

from gameday.core.errors import ValidationError
from gameday.core.events import Kind
from gameday.core.policy import ROLES
from gameday.core.settings import Settings
from gameday.core.spec import OneOf, Spec, first_error

CHATS = ("matrix", "slack")
KINDS = ("incident", "gameday", "drill")
# What a room hears by default: the incident's course, pages, people's moves, the
# runbook's runs and the drill's injects; not every task line or Kubernetes event.
POSTED = (Kind.INCIDENT_DECLARED, Kind.PAGE_SENT, Kind.INCIDENT_ACKNOWLEDGED,
          Kind.ROLE_ASSIGNED, Kind.SEVERITY_CHANGED, Kind.INCIDENT_ESCALATED,
          Kind.COMMS_POSTED, Kind.NOTE_ADDED, Kind.RUNBOOK_QUEUED, Kind.RUNBOOK_STARTED,
          Kind.RUNBOOK_FINISHED, Kind.RUNBOOK_REJECTED, Kind.APPROVAL_REQUESTED,
          Kind.RUNBOOK_APPROVED, Kind.MITIGATION_DECLARED, Kind.MITIGATED,
          Kind.INCIDENT_RESOLVED, Kind.DRILL_INJECT, Kind.DRILL_HINT, Kind.ALERT_FIRED)


class ChatConfig(Spec):
    """The project's chat (``[chat]``)."""

    kind: Annotated[str, OneOf(CHATS)] = Field(description="matrix or slack")
    homeserver: str | None = Field(default=None, description=(
        "matrix: the homeserver's client API, http(s)://HOST[:PORT]"))
    user: str | None = Field(default=None, description=(
        "matrix: the account gameday posts as (@gameday:example.org)"))
    token_env: str = Field(default="GAMEDAY_CHAT_TOKEN", description=(
        "the environment variable holding its access token (a Slack bot token)"))
    token_file: str | None = Field(default=None, description=(
        "or a file holding it (relative to the project)"))
    signing_secret_env: str = Field(default="GAMEDAY_SLACK_SIGNING_SECRET", description=(
        "slack: the environment variable holding the app's signing secret"))
    api_url: str | None = Field(default=None, description=(
        "slack: Slack's Web API base URL [default: Slack's own]"))
    room_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,30}$")] = Field(
        default="gameday", description="what every room's name says after its label")
    invite: list[Annotated[str, OneOf(ROLES)]] = Field(default=list(ROLES), description=(
        "the roles whose holders are invited to an incident's room (and paged there)"))
    kinds: list[Annotated[str, OneOf(KINDS)]] = Field(default=list(KINDS), description=(
        "which incidents get a room: real ones, game days, drills"))
    post: list[Annotated[str, OneOf(tuple(str(k) for k in Kind))]] = Field(
        default=[str(k) for k in POSTED], description="the timeline's events posted")
    notes: bool = Field(default=False, description=(
        "what people say in a room (not a command) goes on the timeline as a note"))

    def token(self, root: Path) -> str:
        """The access token: from ``token_file`` (relative to the project), else the
        environment. A ValidationError names what is missing, never the token."""
        if self.token_file:
            path = (root / self.token_file).resolve()
            try:
                found = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValidationError(f"cannot read the chat token file {path}: "
                                      f"{exc.strerror}", field="chat.token_file") from None
        else:
            found = os.environ.get(self.token_env, "").strip()
        if not found:
            raise ValidationError(f"no chat token: set {self.token_env} (or token_file)",
                                  field="chat.token_env")
        return found


def load(settings: Settings) -> ChatConfig | None:
    """The project's ``[chat]``, checked (a ValidationError names the file and the
    field), or None when the project names no chat."""
    raw: Any = settings.chat
    if raw is None:
        return None
    file = str(settings.project_file or "gameday.toml")
    if not isinstance(raw, dict):
        raise ValidationError("must be a table", file=file, field="chat")
    try:
        config = ChatConfig.model_validate(raw)
    except PydanticError as exc:
        raise first_error(exc, file, ("chat",)) from None
    needed = {"matrix": ("homeserver", "user"), "slack": ()}[config.kind]
    for key in needed:
        if not getattr(config, key):
            raise ValidationError(f"is required for {config.kind}", file=file,
                                  field=f"chat.{key}")
    if config.homeserver and not config.homeserver.startswith(("http://", "https://")):
        raise ValidationError("must be an http(s):// URL", file=file, field="chat.homeserver")
    return config
