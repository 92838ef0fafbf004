"""Installs come from the lock files (requirements/): what this suite runs on is what
the lock says, the lock still fits pyproject.toml's ranges, and every way gameday is
installed here (make, the image) installs from it with hashes checked."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
TEST_LOCK = ROOT / "requirements" / "test.txt"
APP_LOCK = ROOT / "requirements" / "app.txt"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>[^\s;\\]+)"
                 r"(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) for every pin whose marker holds on this machine."""
    found: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in lock.read_text().splitlines():
        stripped = line.strip()
        if match := PIN.match(line):
            marker = match["marker"]
            current = []
            if marker is None or Marker(marker).evaluate():
                found[canonicalize_name(match["name"])] = (match["version"], current)
        elif stripped.startswith("--hash=") and current is not None:
            current.append(stripped.split("=", 1)[1].rstrip(" \\"))
        elif stripped and not stripped.startswith("#"):
            raise AssertionError(f"{lock.name}: a line that is not a pin or a hash: {line!r}")
    return found


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_every_pin_carries_hashes():
    for lock in (TEST_LOCK, APP_LOCK):
        locked = pins(lock)
        assert locked, lock
        for name, (_version, hashes) in locked.items():
            assert hashes and all(h.startswith("sha256:") for h in hashes), (lock.name, name)


def test_this_suite_runs_on_exactly_what_is_locked():
    """`make test` installs requirements/test.txt: every package it pins is installed at
    that version here, so a fresh machine and CI run what was tested."""
    wrong = {}
    for name, (version, _) in pins(TEST_LOCK).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"locked vs installed (run `make setup`): {wrong}"


@pytest.mark.parametrize("lock,extras", [(APP_LOCK, ()), (TEST_LOCK, ("test",))])
def test_the_lock_fits_the_ranges_in_pyproject(lock, extras):
    """A range moved in pyproject.toml without `make lock` fails here, naming it."""
    wanted = [Requirement(r) for r in project()["dependencies"]]
    for extra in extras:
        wanted += [Requirement(r) for r in project()["optional-dependencies"][extra]]
    locked = pins(lock)
    for req in wanted:
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} is not in {lock.name}: run `make lock`"
        assert req.specifier.contains(locked[name][0], prereleases=True), \
            f"{lock.name} pins {name}=={locked[name][0]}, outside {req}: run `make lock`"


def test_the_image_gets_what_the_suite_tested():
    """requirements/app.txt is the runtime part of test.txt, version for version."""
    app, test = pins(APP_LOCK), pins(TEST_LOCK)
    assert set(app) <= set(test)
    assert {n: v for n, (v, _) in app.items()} == {n: test[n][0] for n in app}


def test_make_and_the_image_install_from_the_lock_with_hashes():
    makefile = (ROOT / "Makefile").read_text()
    assert "LOCK   := requirements/test.txt" in makefile
    assert "--require-hashes -r $(LOCK)" in makefile
    assert re.search(r"pip install .*--no-deps[^\n]*\\\n\s*--no-build-isolation -e \.", makefile)
    assert re.search(r"^STAMP .*\$\(LOCK\)", makefile, re.M)  # a new lock reinstalls
    assert re.search(r"^lock:", makefile, re.M)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir --require-hashes -r requirements/app.txt" in dockerfile
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ./" in dockerfile
