# tasks-api: `make run` serves the API, `make test` runs everything CI runs.
# Needs only Python 3.11+ and make; uv is installed into .tools/ when it is not on PATH.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
# Use the Python already installed; never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON_PREFERENCE := only-system
# Installed packages compiled to bytecode once, at install: with PYTHONDONTWRITEBYTECODE set (as
# on CI machines) every server and worker process would otherwise compile them again at start.
export UV_COMPILE_BYTECODE := 1

UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --locked $(if $(wildcard .env),--env-file .env)

.PHONY: help install install-runtime run migrate test test-citus test-packages fuzz bench bench-citus client client-ts stubs contract-check contract-diff lint typecheck security

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

install: $(UV)  ## install the locked dependencies into .venv
	$(UV) sync --locked

# For servers: the locked runtime dependencies alone (about 145 MB, against 605 MB with the
# development tools), with Granian too when SERVER=granian.
install-runtime: $(UV)  ## install only what serving needs into .venv (no development tools)
	$(UV) sync --locked --no-dev $(if $(filter granian,$(SERVER)),--extra granian)

run: install  ## serve on http://$HOST:$PORT (embedded PostgreSQL unless DATABASE_URL is set)
	APP_ENV=$${APP_ENV:-development} $(RUN) tasks-api serve --migrate

migrate: install  ## migrate the database schema to head
	APP_ENV=$${APP_ENV:-development} $(RUN) tasks-api migrate

test: lint typecheck security contract-check contract-diff test-packages  ## everything CI runs
	$(RUN) pytest --cov --cov-report=term-missing

# What the tests start for real besides Python packages: Debian's PgBouncer (tests/pgbouncer.py)
# and Chromium (tests/e2e/test_browser.py).
TEST_PACKAGES := pgbouncer chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
test-packages:  ## install the Debian packages the tests run (pgbouncer, chromium) where missing
	@missing=""; for package in $(TEST_PACKAGES); do \
		command -v $$package >/dev/null || [ -x /usr/sbin/$$package ] || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (Debian packages the tests start)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get install -y -q --no-install-recommends $$missing \
			|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $$missing; }; \
	fi

# tasks-api on a real Citus cluster, a coordinator and two workers: tests/citus, then the API
# suite (tests/api) with the coordinator as its database; about a minute.
# It needs PostgreSQL 15 with Citus: CITUS_PG_BIN names its bin directory; where it is unset,
# the team's ../shared/citus/install.sh puts Citus 13.2 into Debian's PostgreSQL 15 (these
# machines reach only package registries) and says where it is. Elsewhere: README, "When one
# PostgreSQL is not enough".
CITUS_INSTALL ?= ../shared/citus/install.sh
WITH_CITUS = bin="$$CITUS_PG_BIN"; \
	if [ -z "$$bin" ] && [ -f "$(CITUS_INSTALL)" ]; then \
		bin=$$($(SUDO) bash "$(CITUS_INSTALL)" | tail -n 1) || exit 1; \
	fi; \
	CITUS_PG_BIN="$$bin"
test-citus: install  ## tasks-api on a real Citus cluster: tests/citus, and the API suite there
	@$(WITH_CITUS) TEST_ON_CITUS=1 $(RUN) pytest tests/citus tests/api

bench-citus: install  ## tasks-api on a Citus cluster vs one plain PostgreSQL (needs wrk)
	@$(WITH_CITUS) $(RUN) python -m tests.performance.citus $(BENCH_ARGS)

fuzz: install  ## schemathesis against a live server: every check and phase, and user isolation
	$(RUN) pytest tests/fuzz

# BASE: a commit, branch or tag; one that does not exist fails. Unset: the commit before HEAD,
# passed over only where there is none (a first commit, a shallow clone).
BASE ?=
contract-diff: install  ## changes to the contract since BASE (default HEAD~1); fails if breaking
	@if [ -n "$(BASE)" ]; then \
		$(RUN) python -m contracts.tools.diff "$(BASE)"; \
	elif git rev-parse --verify --quiet "HEAD~1^{commit}" >/dev/null; then \
		$(RUN) python -m contracts.tools.diff HEAD~1; \
	else \
		echo "contract-diff: no commit before HEAD to compare with"; \
	fi

stubs: install  ## write a 501 handler stub for every operationId that has no handler yet
	$(RUN) python -m contracts.tools.stubs

contract-check: install  ## openapi-spec-validator plus our contract rules
	$(RUN) python -m contracts.tools.lint

BENCH_ARGS ?=
bench: install  ## tasks-api vs the usual stack vs the floor (needs wrk); BENCH_ARGS=--scale
	$(RUN) python -m tests.performance.bench $(BENCH_ARGS)

CLIENT_DIR ?= build/client
client: install  ## generate a typed Python client package from the contract into CLIENT_DIR
	$(RUN) openapi-python-client generate --path contracts/openapi.yaml \
		--output-path $(CLIENT_DIR) --meta uv --overwrite
	@echo "install it with: pip install $(CLIENT_DIR)   (then: import tasks_api_client)"

TS_PACKAGE := tests/client/typescript
client-ts: install  ## TypeScript types for a frontend (openapi-typescript) into build/client-ts
	cd $(TS_PACKAGE) && $(CURDIR)/.venv/bin/npm ci --no-audit --no-fund --silent
	$(TS_PACKAGE)/node_modules/.bin/openapi-typescript contracts/openapi.yaml \
		--output build/client-ts/schema.d.ts --default-non-nullable=false
	@echo "use it with openapi-fetch: createClient<paths>() from build/client-ts/schema.d.ts"

lint: install  ## ruff check and ruff format --check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

typecheck: install  ## mypy --strict
	$(RUN) mypy

security: install  ## bandit: no medium or high finding
	$(RUN) bandit --quiet --configfile pyproject.toml --severity-level medium \
		--recursive contracts handlers persistence migrations
