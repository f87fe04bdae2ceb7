# Agora developer workflow. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.agora-installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install run web-build web-dev status prometheus test test-unit test-integration test-e2e chaos lint migrate seed shell rotate-keys login bench trace clean distclean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Agora with its pinned dependencies

run: $(STAMP) ## Build the storefront if it changed, start the whole platform in the foreground (Ctrl-C stops it)
	$(BIN)/python -m agora run

web-build: $(STAMP) ## Build the storefront (web/ -> web/dist: npm ci from the lockfile, vite build), as make run does
	$(BIN)/python -m agora web-build

web-dev: $(STAMP) ## Vite's dev server on 127.0.0.1:5173 (hot reload) against the running gateway (make run)
	$(BIN)/python -m agora web-dev

status: $(STAMP) ## What runs: every service's instances, its queues, dead letters, the gateway
	@$(BIN)/python -m agora status

prometheus: $(STAMP) ## Prometheus over what `make run` started (installs Debian's prometheus if missing)
	$(BIN)/python -m agora prometheus

test: $(STAMP) ## Run the whole suite against the real brokers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP) ## Only the pure-logic tests (no brokers)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP) ## Service and broker tests
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(STAMP) ## Real processes over HTTP
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

chaos: $(STAMP) ## Faults under an order load, on servers of its own; report in .agora/chaos/ (~10 min)
	$(BIN)/python -m chaos $(CHAOS_ARGS)

lint: $(STAMP) ## Static checks (ruff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

migrate: $(STAMP) ## Create the databases and apply every service's migrations
	$(BIN)/python -m agora migrate

seed: $(STAMP) ## Load demo data (the platform must be running)
	$(BIN)/python -m agora seed

shell: $(STAMP) ## nameko shell on the platform's vhost (n.rpc.catalog.list_products())
	$(BIN)/python -m agora shell

rotate-keys: $(STAMP) ## New token-signing key; old keys stay published until their tokens expire
	$(BIN)/python -m agora rotate-keys

login: $(STAMP) ## Admin (or any) token via the code flow with PKCE: TOKEN=$$(make -s login)
	@$(BIN)/python -m agora login $(LOGIN_ARGS)

bench: $(STAMP) ## wrk at 1 and 16 clients per scenario, sagas, CPU at rest (JSON in .agora/bench/)
	$(BIN)/python -m bench

trace: $(STAMP) ## One trace's log lines from every process, in time order, and its Zipkin link: make trace ID=<X-B3-TraceId>
	@$(BIN)/python -m agora trace $(ID)

clean: $(STAMP) ## Remove what `make run` created (vhost, broker users, databases and roles, Redis keys, .agora); asks first, YES=1 does not
	$(BIN)/python -m agora reset $(if $(YES),--yes)

distclean: clean ## `make clean`, then the venv, the storefront's packages and build, the tool caches
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info web/node_modules web/dist web/test-results web/.agora-build.lock
