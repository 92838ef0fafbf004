# Everything a fresh machine needs, from the project's own files.
#   make gameday   set up, then run a real game day on the embedded sandbox
#   make test      set up, then run the test suite
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SCENARIO ?= scenarios/checkout-replica-crash.yaml

.PHONY: gameday test setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip "setuptools>=70.1"
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

gameday: setup
	$(VENV)/bin/gameday run $(SCENARIO)

test: setup
	./scripts/system-deps
	./scripts/build-controlplane
	$(VENV)/bin/ruff check gameday tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) .gameday
