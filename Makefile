# riad — the two commands of the README:
#   make run    runs riad's main job (creates or reuses .venv)
#   make test   runs the whole test suite, lint and type checks included
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.riad-installed

.PHONY: run test lint typecheck unit system-deps fuzz clean

# The static website example over HTTPS (docs/http.md): its embedded store and a
# development certificate are built first; riad prints where to reach it.
run: $(STAMP)
	$(BIN)/python examples/static-site/build.py --certs examples/static-site/certs
	@echo "riad: the static website: open https://localhost:8443/ (trust the development CA"
	@echo "riad: examples/static-site/certs/ca.pem); http://localhost:8080/ redirects there. Ctrl-C stops."
	$(BIN)/riad run examples/static-site

test: $(STAMP) system-deps lint typecheck unit

system-deps:
	scripts/system-deps

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples fuzz
	$(BIN)/ruff format --check src tests bench examples fuzz

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/riad

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

FUZZ_RUNS ?= 1000000
FUZZ_CODECS ?= ethernet arp ipv4 icmp udp tcp dhcp ipv6 icmpv6 ndp
fuzz: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,fuzz]'
	for codec in $(FUZZ_CODECS); do \
		$(BIN)/python fuzz/wire.py $$codec -runs=$(FUZZ_RUNS) -print_final_stats=1 || exit 1; \
	done

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
