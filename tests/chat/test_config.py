"""``[chat]`` in gameday.toml and the links between chat accounts and people: what
does not parse is named (file and field), exit 2, and no token ever shows."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gameday.chat.config import load
from gameday.core.errors import ValidationError
from gameday.core.settings import Settings

GOOD = """\
[chat]
kind = "matrix"
homeserver = "http://127.0.0.1:8008"
user = "@gameday:localhost"
"""


def settings(root: Path, toml: str) -> Settings:
    (root / "gameday.toml").write_text(textwrap.dedent(toml))
    return Settings.load(cwd=root, environ={})


@pytest.mark.parametrize("toml,field,says", [
    (GOOD.replace('kind = "matrix"', 'kind = "irc"'), "chat.kind", "irc"),
    (GOOD.replace('homeserver = "http://127.0.0.1:8008"\n', ""), "chat.homeserver",
     "required for matrix"),
    (GOOD.replace("http://127.0.0.1:8008", "matrix.example.org"), "chat.homeserver",
     "http(s)://"),
    (GOOD + "invite = [\"boss\"]\n", "chat.invite.0", "boss"),
    (GOOD + "rooms = \"x\"\n", "chat.rooms", ""),
    (GOOD + "post = [\"alert.fried\"]\n", "chat.post.0", "alert.fried"),
])
def test_a_chat_table_that_does_not_parse_is_named(tmp_path, toml, field, says):
    with pytest.raises(ValidationError) as caught:
        load(settings(tmp_path, toml))
    assert caught.value.field == field and says in caught.value.message
    assert caught.value.file == str(tmp_path / "gameday.toml")


def test_the_token_comes_from_the_environment_or_a_file_and_never_shows(tmp_path,
                                                                         monkeypatch):
    config = load(settings(tmp_path, GOOD))
    assert config is not None and config.notes is False and "responder" in config.invite
    monkeypatch.delenv("GAMEDAY_CHAT_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="set GAMEDAY_CHAT_TOKEN"):
        config.token(tmp_path)
    monkeypatch.setenv("GAMEDAY_CHAT_TOKEN", "syt_secret_0123")
    assert config.token(tmp_path) == "syt_secret_0123"
    from_file = load(settings(tmp_path, GOOD + 'token_file = "secrets/matrix"\n'))
    assert from_file is not None
    with pytest.raises(ValidationError) as caught:
        from_file.token(tmp_path)
    assert caught.value.field == "chat.token_file" and "syt_" not in str(caught.value)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "matrix").write_text("syt_from_file\n")
    assert from_file.token(tmp_path) == "syt_from_file"
    assert load(settings(tmp_path, "[project]\nname = \"x\"\n")) is None


def gameday(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMEDAY_")}
    return subprocess.run([sys.executable, "-m", "gameday", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_chat_it_cannot_read_and_link_refuses_what_is_not_an_account(
        tmp_path):
    (tmp_path / "gameday.toml").write_text(GOOD.replace('kind = "matrix"', 'kind = "irc"'))
    served = gameday(tmp_path, "serve", "--token", "t" * 32, "--port", "0")
    assert served.returncode == 2 and "chat.kind" in served.stderr
    assert "Traceback" not in served.stderr
    (tmp_path / "gameday.toml").write_text(GOOD)
    assert gameday(tmp_path, "user", "add", "ana", "--role", "responder").returncode == 0
    for account in ("ana", "@ana", "http://x", "@ana:localhost; rm -rf /"):
        refused = gameday(tmp_path, "user", "link", "ana", "--chat", account)
        assert refused.returncode == 2 and "--chat" in refused.stderr, account
    nobody = gameday(tmp_path, "user", "link", "zed", "--chat", "@zed:localhost")
    assert nobody.returncode == 1 and "no active user zed" in nobody.stderr
    linked = gameday(tmp_path, "user", "link", "ana", "--chat", "@ana:localhost")
    assert linked.returncode == 0 and "@ana:localhost is ana" in linked.stdout
    assert gameday(tmp_path, "user", "add", "bob", "--role", "commander").returncode == 0
    typo = gameday(tmp_path, "user", "link", "bob", "--chat", "@ana:localhost")
    assert typo.returncode == 1 and "is ana's: --move" in typo.stderr   # never silently
    moved = gameday(tmp_path, "user", "link", "bob", "--chat", "@ana:localhost", "--move")
    assert moved.returncode == 0
    assert gameday(tmp_path, "user", "unlink", "ana", "--chat", "@ana:localhost"
                   ).returncode == 1                                      # bob's now
    assert gameday(tmp_path, "user", "unlink", "bob", "--chat", "@ana:localhost"
                   ).returncode == 0
    assert gameday(tmp_path, "user", "link", "ana", "--chat", "@ana:localhost"
                   ).returncode == 0
    assert gameday(tmp_path, "user", "revoke", "ana").returncode == 0
    from gameday.store import Store

    store = Store(tmp_path / ".gameday" / "gameday.db")
    assert store.chat_person("@ana:localhost") is None                    # revoked: unlinked
    audit = [a["action"] for a in store.audit_log()]
    assert audit.count("chat.linked") == 4   # link, move, unlink, link again


def test_the_configuration_page_names_every_chat_key():
    from gameday.chat.config import ChatConfig

    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    section = page[page.index("`[chat]`"):]
    flat = " ".join(section.split())
    for name, field in ChatConfig.model_fields.items():
        assert f"- `{name}`: {field.description}" in flat, name
