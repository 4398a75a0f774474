# `make run` starts the server, `make demo` one with a simulated match, `make test` runs
# ruff and the whole suite on SQLite, and its storage, money, betslip, crash and reliability
# tests on PostgreSQL too, and the cluster's on PostgreSQL and Redis (installing Chromium,
# PostgreSQL and Redis when missing), `make test-postgres` the whole suite on PostgreSQL,
# `make lint` ruff and the structural gates (tote/lintgate.py), `make audit` checks the
# ledger of the server `make run` started,
# `make bench` measures, `make bench-cluster` (NODES=3) measures a cluster of NODES
# nodes on a throwaway PostgreSQL and Redis (tote bench --cluster), `make binary` builds
# the single executable dist/tote and
# `make test-binary` builds it and runs it against a real client (about 2 minutes: not in
# `make test`), `make soak SEED=7 MINUTES=10` runs the reliability soak and
# `make abuse SECONDS=120 IDLE=3000` the abuse scenario (docs/reliability.md),
# `make cluster` three nodes on a throwaway PostgreSQL and Redis (docs/cluster.md).
# Each builds .venv first when pyproject.toml is newer than the last install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BINARY := dist/tote
# The Debian packages the tests need (one line: add a package here, nowhere else), each
# installed only when missing, without its recommended extras and with no upgrade of
# what is there: Chromium for the browser tests, PostgreSQL for the tests that start a
# throwaway server of their own (tests/postgres.py; the package's own cluster is not used),
# Redis for the cluster tests (tests/redis.py, one throwaway server per test).
DEBIAN_PACKAGES := chromium postgresql redis-server
# apt-get needs root; sudo when we are not.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run demo test test-postgres lint packages browser bench audit soak abuse binary \
	test-binary cluster clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tote serve

demo: $(STAMP)
	$(BIN)/tote demo

# The missing ones of DEBIAN_PACKAGES (Playwright drives Debian's Chromium; never
# `playwright install`). Nothing is run when all are installed.
packages:
	@missing="$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' \
		|| echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $$missing; \
	fi

browser: packages

# ruff (complexity 10 included), mypy on the typed modules (pyproject's [tool.mypy]),
# then the structural gates: import cycles, imports from a higher layer, SQL outside
# storage/, functions over 60 lines, each held to an allowance that only shrinks.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m tote.lintgate

test: lint packages
	$(BIN)/pytest -q

# The whole suite with every harness on PostgreSQL (tests that are SQLite by nature say
# so and are skipped); a server that cannot start fails the run, with the reason.
test-postgres: lint packages
	TOTE_TEST_ENGINE=postgresql $(BIN)/pytest -q

# The running server at its default address, with the key it keeps in ./data.
audit: $(STAMP)
	$(BIN)/tote audit

bench: $(STAMP)
	$(BIN)/python -m tote.bench

# `tote bench --cluster $(NODES)` (docs/performance.md, "Cluster") on a throwaway
# PostgreSQL (fsync on, as for `tote bench --database`) and Redis (tests/postgres.py,
# tests/redis.py), both stopped when it ends. BENCH_ARGS: the sizes of docs/performance.md's
# figures by default (the full sizes would join 7 x 10,000 subscribers); BENCH_ARGS= for those.
.PHONY: bench-cluster
NODES ?= 3
BENCH_ARGS ?= --quick --subscribers 1000 --seconds 5
bench-cluster: $(STAMP) packages
	@urls=$$(mktemp -d); \
	$(BIN)/python -m tests.postgres --durable > $$urls/pg & pg=$$!; \
	$(BIN)/python -m tests.redis > $$urls/redis & redis=$$!; \
	trap 'kill $$pg $$redis 2>/dev/null; wait $$pg $$redis; rm -rf $$urls' EXIT; \
	trap 'exit 130' INT TERM; \
	while [ ! -s $$urls/pg ] || [ ! -s $$urls/redis ]; do \
		kill -0 $$pg 2>/dev/null && kill -0 $$redis 2>/dev/null || exit 1; sleep 0.2; \
	done; \
	$(BIN)/tote bench --cluster $(NODES) --database "$$(cat $$urls/pg)" \
		--redis "$$(cat $$urls/redis)" $(BENCH_ARGS)

# One self-contained executable (Python, the dependencies and SQLite inside).
binary: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,binary]'
	$(BIN)/pyinstaller --onefile --name tote --noconfirm --log-level WARN \
		--distpath dist --workpath build/pyinstaller --specpath build --collect-data transport.web tote/__main__.py
	@ls -l $(BINARY)

test-binary: binary
	TOTE_BINARY=$(abspath $(BINARY)) $(BIN)/pytest -q -s tests/test_binary.py

SEED ?= 1
MINUTES ?= 5
soak: $(STAMP) packages
	$(BIN)/python -m tests.reliability.soak --seed $(SEED) --minutes $(MINUTES)

# Scenario 7's long run: idle connections, floods, storms and slow clients beside an
# honest bettor; prints p99 ratios and memory (docs/reliability.md).
SECONDS ?= 120
IDLE ?= 3000
abuse: $(STAMP)
	$(BIN)/python -m tests.reliability.abuse --seconds $(SECONDS) --idle $(IDLE)

# Three `tote serve` nodes on loopback, on a throwaway PostgreSQL and Redis; prints each
# node's ports and the operator key, stops everything on Ctrl-C (docs/cluster.md).
cluster: $(STAMP) packages
	$(BIN)/python -m tests.cluster_nodes

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build dist
