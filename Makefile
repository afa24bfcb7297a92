# riad — the two commands of the README:
#   make run    runs riad's main job (creates or reuses .venv)
#   make test   runs the whole test suite, lint and type checks included
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.riad-installed

.PHONY: run test lint typecheck unit system-deps fuzz clean

run: $(STAMP)
	$(BIN)/riad --help

test: $(STAMP) system-deps lint typecheck unit

system-deps:
	scripts/system-deps

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/riad

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

fuzz: $(STAMP)
	$(BIN)/python -m riad.testing.fuzz $(FUZZ_ARGS)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
