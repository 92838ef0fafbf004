"""Settings: found from any directory of a project, paths against the project,
precedence flag > environment > gameday.toml > default, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameday.core.errors import ValidationError
from gameday.core.settings import BUILTIN_RUNBOOKS, Settings, store_path, store_target

ROOT = Path(__file__).resolve().parents[2]


def project(tmp_path: Path, text: str = "") -> Path:
    root = tmp_path / "proj"
    (root / "deep" / "er").mkdir(parents=True)
    (root / "gameday.toml").write_text(text)
    return root


def test_found_from_a_subdirectory_and_paths_resolve_against_the_project(tmp_path):
    root = project(tmp_path, '[project]\nname = "shop"\n[paths]\nrunbooks = "ops/books"\n')
    (root / "ops" / "books").mkdir(parents=True)
    s = Settings.load(cwd=root / "deep" / "er", environ={})
    assert s.root == root.resolve() and s.name == "shop"
    assert s.project_file == (root / "gameday.toml").resolve()
    assert s.runbooks_dir == (root / "ops" / "books").resolve()
    assert s.runbook_dirs == (s.runbooks_dir, BUILTIN_RUNBOOKS)
    assert s.db_path == root.resolve() / ".gameday" / "gameday.db"
    assert s.runs_dir == root.resolve() / ".gameday" / "runs"
    assert s.sandbox_dir == root.resolve() / ".gameday" / "sandbox"


def test_without_a_project_the_working_directory_is_the_project(tmp_path):
    s = Settings.load(cwd=tmp_path, environ={})
    assert s.project_file is None and s.root == tmp_path.resolve()


def test_flag_beats_environment_beats_file(tmp_path):
    root = project(tmp_path, '[store]\ndb = "from-file.db"\n[paths]\nruns = "r"\n')
    cwd = root / "deep"
    s = Settings.load(cwd=cwd, environ={})
    assert s.db == str(root.resolve() / "from-file.db")
    s = Settings.load(cwd=cwd, environ={"GAMEDAY_DB": "env.db", "GAMEDAY_RUNS": "runs"})
    assert s.db == str(cwd.resolve() / "env.db")  # typed in a shell: against the cwd
    assert s.runs_dir == cwd.resolve() / "runs"
    s = Settings.load(cwd=cwd, environ={"GAMEDAY_DB": "env.db"}, db="flag.db")
    assert s.db == str(cwd.resolve() / "flag.db")


@pytest.mark.parametrize("text,field", [
    ("[paths]\nrunbok = 'x'\n", "paths.runbok"),
    ("[colour]\nx = 'y'\n", "colour"),
    ("[paths]\nruns = 3\n", "paths.runs"),
    ("[store]\ndb = 'mysql://db/gameday'\n", "[store] db"),
    ("[store]\ndb = 'sqlite:from-toml.db'\n", "[store] db"),
])
def test_bad_project_files_name_file_and_field(tmp_path, text, field):
    root = project(tmp_path, text)
    with pytest.raises(ValidationError) as err:
        Settings.load(cwd=root, environ={})
    assert err.value.field == field


def test_a_broken_project_file_is_a_validation_error(tmp_path):
    root = project(tmp_path, "[paths\n")
    with pytest.raises(ValidationError, match="not valid TOML") as err:
        Settings.load(cwd=root, environ={})
    assert err.value.file == str(root / "gameday.toml")


@pytest.mark.parametrize("url,path", [("sqlite:///rel/g.db", "rel/g.db"),
                                      ("sqlite:////abs/g.db", "/abs/g.db"),
                                      ("plain.db", "plain.db")])
def test_store_urls(url, path):
    assert store_path(url) == Path(path)


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite://host/x", "", "sqlite://",
                                 "postgresql://h", "postgresql://h:port/db"])
def test_store_urls_that_are_not_ours_are_refused_not_taken_for_files(url):
    with pytest.raises(ValidationError) as err:
        store_target(url)
    assert err.value.field == "--db"


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgresql+psycopg://u:p@h:5433/g"])
def test_postgresql_urls_name_a_store(url):
    assert store_target(url) == url
    assert Settings.load(cwd=ROOT, environ={"GAMEDAY_DB": url}).db == url


@pytest.mark.parametrize("url", ["sqlite:gd.db", "mysql:x", "postgresql:/u@h/db",
                                 "postgres:db", "sqlite:///", "/dev/null", "."])
def test_what_only_starts_like_a_url_or_is_no_file_is_refused_not_created(tmp_path, url,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError) as err:
        Settings.load(cwd=tmp_path, environ={}, db=url)
    assert err.value.field == "--db"
    with pytest.raises(ValidationError) as err:
        Settings.load(cwd=tmp_path, environ={"GAMEDAY_DB": url})
    assert err.value.field == "GAMEDAY_DB"
    assert list(tmp_path.iterdir()) == []  # no store made under that name


def test_cli_names_where_a_store_it_refuses_was_given(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gameday.cli.main import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a database\n")
    given = CliRunner().invoke(cli, ["--db", "", "incident", "list"])
    assert given.exit_code == 2 and "--db" in given.output, given.output
    from_env = CliRunner().invoke(cli, ["incident", "list"], env={"GAMEDAY_DB": "mysql:x"})
    assert from_env.exit_code == 2 and "GAMEDAY_DB" in from_env.output, from_env.output
    garbage = CliRunner().invoke(cli, ["--db", "notes.txt", "incident", "list"])
    assert garbage.exit_code == 2 and "notes.txt: is not a SQLite store" in garbage.output
    assert "Traceback" not in garbage.output
    assert (tmp_path / "notes.txt").read_text() == "not a database\n"


def test_cli_refuses_a_database_url_it_does_not_understand(tmp_path):
    from click.testing import CliRunner

    from gameday.cli.main import cli

    result = CliRunner().invoke(cli, ["--db", "mysql://u@127.0.0.1/g", "incident", "list"])
    assert result.exit_code == 2
    assert "--db" in result.output


def test_an_unreachable_postgresql_is_a_clear_error_not_a_traceback(tmp_path):
    from click.testing import CliRunner

    from gameday.cli.main import cli

    result = CliRunner().invoke(cli, ["--db", "postgresql://u@127.0.0.1:1/g", "incident",
                                      "list"])
    assert result.exit_code == 1, result.output
    assert "cannot reach the store at postgresql" in result.output
    assert "Traceback" not in result.output
    assert not (Path.cwd() / "postgresql:").exists()


def test_the_servers_address_from_environment_file_or_default(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    assert Settings.load(cwd=root, environ={}).url == "http://127.0.0.1:8080"
    (root / "gameday.toml").write_text('[serve]\nurl = "https://gameday.example.test/"\n')
    assert Settings.load(cwd=root, environ={}).url == "https://gameday.example.test"
    given = Settings.load(cwd=root, environ={"GAMEDAY_URL": "http://10.0.0.5:9000"})
    assert given.url == "http://10.0.0.5:9000"
    for bad, field in (("gameday.example.test", "GAMEDAY_URL"), ("ftp://x", "GAMEDAY_URL")):
        with pytest.raises(ValidationError) as caught:
            Settings.load(cwd=root, environ={"GAMEDAY_URL": bad})
        assert caught.value.field == field
    (root / "gameday.toml").write_text('[serve]\nurl = "http://[::1"\n')
    with pytest.raises(ValidationError) as caught:
        Settings.load(cwd=root, environ={})
    assert caught.value.field == "[serve] url"


def test_the_configuration_page_lists_every_setting_as_declared():
    """The configuration page (docs/configuration.md) is the declaration
    (``settings.SETTINGS``), row for row: a setting added, renamed or given another
    default shows up there."""
    from gameday.core.settings import SETTINGS, reference

    section = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
               ).read_text()
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    assert rows == reference() and len(rows) == len(SETTINGS)


def test_every_key_gameday_toml_accepts_is_a_declared_setting(tmp_path):
    from gameday.core.settings import SETTINGS, Settings

    sections: dict[str, list[str]] = {}
    for n, s in enumerate(SETTINGS):
        value = "http://127.0.0.1:9" if s.section == "serve" else f"x{n}"
        sections.setdefault(s.section, []).append(f'{s.key} = "{value}"')
    (tmp_path / "gameday.toml").write_text("".join(
        f"[{section}]\n" + "\n".join(lines) + "\n" for section, lines in sections.items()))
    for n, s in enumerate(SETTINGS):  # the directories gameday reads must be there
        if s.field == "runbooks_dir":
            (tmp_path / f"x{n}").mkdir()
    loaded = Settings.load(cwd=tmp_path, environ={})
    assert loaded.name == "x7" and loaded.runs_dir == tmp_path / "x1"
    (tmp_path / "gameday.toml").write_text('[paths]\nscratch = "x"\n')
    with pytest.raises(ValidationError) as refused:
        Settings.load(cwd=tmp_path, environ={})
    assert refused.value.field == "paths.scratch"


def test_the_allowlist_is_read_as_declared_and_refused_when_malformed(tmp_path):
    """``[safety]``: the lists the configuration page names, each a list of strings."""
    from gameday.core.settings import SAFETY_KEYS, Settings

    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert all(f"- `{key}`: {text}" in page for key, text in SAFETY_KEYS.items())
    (tmp_path / "gameday.toml").write_text(
        '[safety]\nurls = ["http://127.0.0.1:9898/"]\nproxies = ["podinfo"]\n')
    safety = Settings.load(cwd=tmp_path, environ={}).safety
    assert safety.declared and safety.urls == ("http://127.0.0.1:9898/",)
    assert safety.proxies == ("podinfo",) and safety.hosts == ()
    for text, field in (('[safety]\nurls = "http://x/"\n', "safety.urls"),
                        ('[safety]\nurls = [""]\n', "safety.urls"),
                        ('[safety]\nports = ["1"]\n', "safety.ports")):
        (tmp_path / "gameday.toml").write_text(text)
        with pytest.raises(ValidationError) as refused:
            Settings.load(cwd=tmp_path, environ={})
        assert refused.value.field == field


def test_the_teams_targets_are_read_and_refused_when_malformed(tmp_path):
    """``[[targets]]``: the keys the configuration page names; a target is chosen by
    every one of its match labels."""
    from gameday.core.settings import TARGET_KEYS, Settings

    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert all(f"- `{key}`: {text}" in page for key, text in TARGET_KEYS.items())
    (tmp_path / "gameday.toml").write_text(
        '[[targets]]\nname = "staging"\nkind = "kubernetes"\n'
        'match = {cluster = "staging"}\nkubeconfig = "kube.yaml"\ncontext = "stg"\n\n'
        '[[targets]]\nname = "podinfo"\nkind = "service"\nmatch = {service = "podinfo"}\n'
        'inventory = "hosts.ini"\n')
    staging, podinfo = Settings.load(cwd=tmp_path, environ={}).targets
    assert staging.env == {"KUBECONFIG": str(tmp_path / "kube.yaml"),
                           "KUBERNETES_CONTEXT": "stg"}
    assert staging.labels == {"context": "stg"}
    assert staging.matches({"cluster": "staging", "x": "y"})
    assert not staging.matches({"cluster": "prod"}) and not staging.matches({})
    assert podinfo.env == {"GAMEDAY_INVENTORY": str(tmp_path / "hosts.ini")}
    base = '[[targets]]\nname = "a"\nkind = "kubernetes"\nmatch = {c = "x"}\ncontext = "k"\n'
    for text, field in (
            ('[targets]\nname = "a"\n', "targets"),
            (base.replace('kind = "kubernetes"', 'kind = "mainframe"'), "targets[0].kind"),
            (base.replace('match = {c = "x"}', "match = {}"), "targets[0].match"),
            (base.replace('context = "k"\n', ""), "targets[0].context"),
            (base + 'inventory = "h.ini"\n', "targets[0].inventory"),
            (base + 'colour = "blue"\n', "targets[0].colour"),
            (base + base, "targets[1].name")):
        (tmp_path / "gameday.toml").write_text(text)
        with pytest.raises(ValidationError) as refused:
            Settings.load(cwd=tmp_path, environ={})
        assert refused.value.field == field, (text, refused.value)


@pytest.mark.parametrize("text,field", [
    ("[project]\nname = 'Bad Name!'\n", "project.name"),
    ("[serve]\nurl = 'not a url'\n", "[serve] url"),
    ("[paths]\nrunbooks = 'nowhere'\n", "[paths] runbooks"),
    ("[paths]\nruns = 'a-file'\n", "[paths] runs"),
])
def test_a_project_file_value_that_cannot_be_is_named_with_its_file(tmp_path, text, field):
    root = project(tmp_path, text)
    (root / "a-file").write_text("not a directory\n")
    with pytest.raises(ValidationError) as err:
        Settings.load(cwd=root, environ={})
    assert (err.value.file, err.value.field) == (str(root / "gameday.toml"), field)


def test_a_directory_given_in_the_environment_is_never_ignored(tmp_path):
    root = project(tmp_path)
    (root / "a-file").write_text("x\n")
    for environ, said in (({"GAMEDAY_RUNBOOKS": "nope"}, "does not exist"),
                          ({"GAMEDAY_RUNS": "a-file"}, "is not a directory")):
        with pytest.raises(ValidationError, match=said) as err:
            Settings.load(cwd=root, environ=environ)
        assert err.value.field == next(iter(environ))


def test_yaml_keys_given_twice_and_files_that_are_not_files_are_refused(tmp_path):
    import os

    from gameday.core.spec import read_yaml

    twice = tmp_path / "twice.yaml"
    twice.write_text("name: a\ntitle: t\nname: b\n")
    with pytest.raises(ValidationError, match="found the key 'name' twice") as err:
        read_yaml(twice)
    assert err.value.field == "line 3"
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ValidationError, match="is not a regular file"):
        read_yaml(fifo)  # never waits for a writer
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &b {a: 1}\nuse:\n  <<: *b\n  c: 2\n")
    assert read_yaml(merged)["use"] == {"a": 1, "c": 2}


def test_serve_refuses_options_that_cannot_work(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gameday.cli.main import cli

    monkeypatch.chdir(project(tmp_path))
    env = {"GAMEDAY_TOKEN": "a-token-of-twenty-chars"}
    for args, named in ((["--host", "not a host"], "--host"),
                        (["--approval-ttl", "0s"], "--approval-ttl"),
                        (["--trusted-proxy", "10.0.0.0/8"], "--trusted-proxy")):
        result = CliRunner().invoke(cli, ["serve", "--port", "0", *args], env=env)
        assert result.exit_code == 2 and named in result.output, (args, result.output)


def test_merge_keys_read_as_yaml_reads_them(tmp_path):
    """A key a merge (``<<: *anchor``) brings in may be given again on purpose, also in
    a mapping merged further on: only a key written twice in one mapping is refused."""
    import yaml

    from gameday.core.spec import read_yaml

    text = ("- hosts: localhost\n"
            "  vars: {http: &http {method: GET, timeout: 5}}\n"
            "  tasks:\n"
            "    - block:\n"
            "        - uri: &health {<<: *http, url: http://h/health, timeout: 10}\n"
            "    - uri: {<<: *health}\n")
    path = tmp_path / "merged.yml"
    path.write_text(text)
    assert read_yaml(path) == yaml.safe_load(text)


def test_a_relative_store_is_looked_at_where_it_resolves(tmp_path):
    root = project(tmp_path, '[store]\ndb = "data.db"\n')
    (root / "data.db").mkdir()
    (root / "sub").mkdir()
    for cwd in (root, root / "sub"):  # from anywhere in the project: the same refusal
        with pytest.raises(ValidationError, match="is a directory") as err:
            Settings.load(cwd=cwd, environ={})
        assert err.value.field == "[store] db"


def test_the_runbooks_directory_init_names_may_be_left_out(tmp_path):
    root = project(tmp_path, '[paths]\nrunbooks = "runbooks"\n')  # as gameday init writes
    assert Settings.load(cwd=root, environ={}).runbooks_dir == (root / "runbooks").resolve()
