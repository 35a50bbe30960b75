# CLSM workflow engine. Two commands: `make up` (start everything with demo data) and
# `make test` (the whole suite). Everything is installed into .venv by the Makefile itself.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export CLSM_VAR_DIR ?= $(CURDIR)/var
export CLSM_PREFECT_PORT ?= 4200
export CLSM_SERVICE_PORT ?= 8000
export CLSM_SMTP_PORT ?= 1025
export CLSM_PREFECT_API_URL ?= http://127.0.0.1:$(CLSM_PREFECT_PORT)/api
export CLSM_BASE_URL ?= http://127.0.0.1:$(CLSM_SERVICE_PORT)
export CLSM_PROJECT_DIR := $(CURDIR)

# Prefect: its own state under var/, the UI told where its API is, results persisted so
# that suspended runs survive, quick polling so that a resumed run goes on within seconds.
export PREFECT_HOME ?= $(CLSM_VAR_DIR)/prefect
export PREFECT_API_URL := $(CLSM_PREFECT_API_URL)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_RESULTS_PERSIST_BY_DEFAULT := true
export PREFECT_LOCAL_STORAGE_PATH ?= $(CLSM_VAR_DIR)/prefect/storage
export PREFECT_WORKER_QUERY_SECONDS ?= 2
# running flow runs beat every 30 s; tick marks CRASHED those silent for
# CLSM_SILENT_RUN_SECONDS (machine lost) and hands them back to the pool
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY ?= 30
# Prefect's retention (README, "A year of operation"): finished runs 30 days, events 7 days,
# heartbeat events 1 day; suspended runs are never removed
export PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED ?= events,flow_runs
export PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD ?= 2592000
export PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES ?= {"prefect.flow-run.heartbeat": 86400}
export PREFECT_SERVER_EVENTS_RETENTION_PERIOD ?= P7D
export PREFECT_SERVER_API_HOST := 127.0.0.1
export PREFECT_SERVER_API_PORT := $(CLSM_PREFECT_PORT)
# Locked: people reach Prefect only through the service's gateway (/prefect/); the server
# wants its secret (PREFECT_SERVER_API_AUTH_STRING, set by `up` from `clsm prefect-auth`),
# grants CORS to the service alone and checks Prefect's CSRF tokens.
export PREFECT_UI_SERVE_BASE := /prefect
export PREFECT_UI_API_URL := $(CLSM_BASE_URL)/prefect/api
export PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS := $(CLSM_BASE_URL)
export PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED := true

.PHONY: up test lint install system-deps bench test-reliability clean format

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 est requis ($(PYTHON) introuvable)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: install
	@mkdir -p $(CLSM_VAR_DIR)
	$(BIN)/clsm db upgrade
	@secret="$$($(BIN)/clsm prefect-auth)" && \
	  export PREFECT_SERVER_API_AUTH_STRING="$$secret" PREFECT_API_AUTH_STRING="$$secret" && \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f service/Procfile -d $(CURDIR) start

# Debian packages the suite needs: PostgreSQL binaries and Chromium for browser tests.
system-deps:
	@missing=""; \
	command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || missing="$$missing fonts-dejavu-core"; \
	if [ -n "$$missing" ]; then \
	  echo "Installation des paquets Debian :$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check flows models notifications service tests bench
	$(BIN)/ruff format --check flows models notifications service tests bench
	$(BIN)/mypy flows models notifications service
	$(BIN)/lint-imports --no-logo --no-cache

format: install
	$(BIN)/ruff format flows models notifications service tests bench
	$(BIN)/ruff check --fix flows models notifications service tests bench

# The production-topology scenarios need a Prefect server of their own (on PostgreSQL):
# a second session, after the rest (tests/conftest.py leaves them out of the first).
test: install system-deps lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=30 $(PYTEST_ARGS)
	$(BIN)/pytest -q -p no:cacheprovider tests/production

bench: install system-deps
	$(BIN)/python -m bench.run

# The fault and abuse scenarios with the full counts; figures in bench/results/reliability.json.
test-reliability: install system-deps
	RELIABILITY_COUNTS=full $(BIN)/pytest -q -s -p no:cacheprovider -m reliability

clean:
	rm -rf $(VENV) var/prefect var/*.db var/mail
