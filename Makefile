# Everything a fresh machine needs, from the project's own files.
#   make gameday   set up, then run a real game day on the embedded sandbox
#   make test      set up, then run the test suite
#   make lock      move the locked dependencies on purpose (see README, "Dependencies")
#
# Installs come from the lock files in requirements/ (exact versions, every file's hash),
# so a fresh machine gets what CI tested; pyproject.toml keeps the ranges for people who
# install gameday as a library.
VENV   ?= .venv
PYTHON ?= python3
LOCK   := requirements/test.txt
STAMP  := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml | cksum | cut -d' ' -f1)
SCENARIO ?= scenarios/checkout-replica-crash.yaml
# The suite in this many processes (pytest-xdist, a test file's tests in one of them):
# two share a 2-core machine well, 14 to 20 minutes instead of 26 (docs/development.md).
# `make test TEST_WORKERS=0` runs it in this one.
TEST_WORKERS ?= 2
UV_VERSION := 0.13.9
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock"

.PHONY: gameday test setup lock clean

setup: $(STAMP)

$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	$(VENV)/bin/python -m pip check
	rm -f $(VENV)/.installed-*
	touch $@

gameday: setup
	$(VENV)/bin/gameday run $(SCENARIO)

test: setup
	./scripts/system-deps
	./scripts/build-controlplane
	./scripts/build-teamstack
	./scripts/build-chatserver
	$(VENV)/bin/ruff check gameday tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# Re-resolves both lock files after pyproject.toml changed, keeping every pin that still
# fits; `make lock UPGRADE=all` moves everything to the newest version pyproject.toml
# allows, `make lock UPGRADE="cryptography ansible-core"` only those. Then `make test`, and
# commit requirements/ with the change that needed it.
UPGRADE ?=
lock:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV_COMPILE) $(if $(filter all,$(UPGRADE)),--upgrade,$(addprefix --upgrade-package ,$(UPGRADE))) \
		pyproject.toml requirements/build.in --extra test -o requirements/test.txt
	$(UV_COMPILE) pyproject.toml requirements/build.in -c requirements/test.txt \
		-o requirements/app.txt
	$(UV_COMPILE) $(if $(filter all,$(UPGRADE)),--upgrade) requirements/synapse.in \
		-o requirements/synapse.txt

clean:
	rm -rf $(VENV) .gameday
