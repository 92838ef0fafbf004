"""The project's chat, made from its ``[chat]``: Matrix or Slack."""

from __future__ import annotations

from pathlib import Path

from gameday.chat.base import Chat
from gameday.chat.config import ChatConfig


def connect(config: ChatConfig, root: Path) -> Chat:
    """The chat ``config`` names, signed in with its token (a ValidationError names a
    missing token; a chat that does not answer is found out on first use)."""
    token = config.token(root)
    if config.kind == "matrix":
        from gameday.chat.matrix import MatrixChat

        return MatrixChat(config, token)
    from gameday.chat.slack import SlackChat  # type: ignore[import-not-found,unused-ignore]

    chat: Chat = SlackChat(config, token)
    return chat
