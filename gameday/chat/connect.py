"""The project's chat, made from its ``[chat]``: Matrix or Slack."""

from __future__ import annotations

from pathlib import Path

from gameday.chat.base import Chat
from gameday.chat.config import ChatConfig


def connect(config: ChatConfig, root: Path) -> Chat:
    """The chat ``config`` names, signed in with its token (a ValidationError names a
    missing token; a chat that does not answer is found out on first use)."""
    if config.kind == "matrix":
        from gameday.chat.matrix import MatrixChat

        return MatrixChat(config, config.token(root))
    from gameday.chat.slack import SlackChat

    return SlackChat.from_config(config, root)
