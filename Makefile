# `make run` starts the server, `make test` runs ruff and the whole suite, `make lint`
# only ruff, `make audit` checks the ledger of the server `make run` started, `make bench`
# measures, `make soak SEED=7 MINUTES=10` runs the reliability soak (docs/reliability.md).
# Each builds .venv first when pyproject.toml is newer than the last install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench audit soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tote serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest -q

# The running server at its default address, with the key it keeps in ./data.
audit: $(STAMP)
	$(BIN)/tote audit

bench: $(STAMP)
	$(BIN)/python -m tote.bench

SEED ?= 1
MINUTES ?= 5
soak: $(STAMP)
	$(BIN)/python -m tests.reliability.soak --seed $(SEED) --minutes $(MINUTES)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
