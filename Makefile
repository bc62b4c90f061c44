# The two commands: `make demo` and `make test`. Both bootstrap .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
# cfn-lint and checkov pin versions Airflow conflicts with: they get their own venv
IAC := $(VENV)/iac
IAC_STAMP := $(IAC)/.installed-requirements
# Debian's Chromium: the browser tests open the weekly review pack in it
CHROMIUM ?= /usr/bin/chromium
export BP_CHROMIUM := $(CHROMIUM)

.PHONY: help venv mariadb-headers browser demo test test-fast lint up down dashboards dashboard-pictures bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(MAKE) --no-print-directory mariadb-headers
	@echo "Installing requirements-dev.txt into $(VENV) (first run: about 3 minutes)"
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(IAC_STAMP): tests/infra/requirements-iac.txt $(STAMP)
	@test -x $(IAC)/bin/python || $(PYTHON) -m venv $(IAC)
	@echo "Installing cfn-lint and checkov into $(IAC) (first run: about 30 seconds)"
	@$(IAC)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/infra/requirements-iac.txt
	@touch $@

venv: $(STAMP) $(IAC_STAMP) ## Create .venv with the pinned requirements (and .venv/iac for the template linters)

browser: ## Debian's chromium for the browser tests (apt-get install when missing)
	@test -x $(CHROMIUM) || { \
	  echo "Installing Debian's chromium for the browser tests (about 15 seconds)"; \
	  command -v apt-get >/dev/null || { echo "no apt-get here: install Chromium and run make with CHROMIUM=/path/to/chromium" >&2; exit 1; }; \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	  || { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; \
	  test -x $(CHROMIUM); }

mariadb-headers: ## MariaDB's C client library and headers, which mysqlclient builds against (apt-get install when missing)
	@pkg-config --exists libmariadb 2>/dev/null || { \
	  echo "Installing Debian's libmariadb-dev for the MariaDB driver (about 10 seconds)"; \
	  command -v apt-get >/dev/null || { echo "no apt-get here: install MariaDB's (or MySQL's) client headers and pkg-config" >&2; exit 1; }; \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libmariadb-dev pkg-config >/dev/null 2>&1 \
	  || { $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libmariadb-dev pkg-config >/dev/null; }; \
	  pkg-config --exists libmariadb; }

demo: $(STAMP) ## Run the whole pipeline on the embedded local stack; exit 0 only if every run succeeded
	@$(PY) -m devstack demo

lint: venv ## ruff over the project (lint and format)
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check --quiet .

# The end-to-end tests mostly wait on Airflow (the CPUs stay about 80 % idle while one
# group runs): four groups, each in a pytest of its own with a stack of its own
# (.local/pytest/e2e-<group>), beside the unit tests; their output follows once all have
# finished. Each e2e file names its group with a marker (fleets, amis, services or
# celery; tests/test_layout.py fails on a file with none or two): five stacks overload
# two CPUs. The `benchmark` tests (a ratio against the database's bare GROUP BY) run
# first, alone: beside four stacks the two CPUs are busy and the ratio measures the load,
# not the code. pytest exits 5 when it collected no test: that must never read as success.
# The end-to-end groups are the critical path (about twice the unit tests' time), so the
# unit tests run at a lower priority and take the CPU the stacks leave idle: in a session
# of their own whose scheduling group is niced (Linux gives each session its group, so a
# plain `nice` would weigh nothing against the stacks' services, each in its own session).
# Background jobs of a shell ignore Ctrl-C, and the unit tests' session doesn't get it:
# the recipe forwards it as SIGTERM to every pytest (tests/conftest.py makes that tear the
# fixtures down as Ctrl-C does, so each stack stops) and waits for them.
E2E_GROUPS := fleets amis services celery
LOW_PRIORITY := setsid --wait sh -c 'echo 10 > /proc/self/autogroup 2>/dev/null; exec nice -n 10 "$$@"' low-priority
test: venv lint browser ## The whole test suite (what .ci/run runs)
	@mkdir -p .local; pids=""; upid=""; \
	trap 'kill -TERM $$pids 2>/dev/null; [ -z "$$upid" ] || kill -TERM -- -$$upid 2>/dev/null; wait; exit 130' INT TERM; \
	$(PY) -m pytest -p no:cacheprovider -m benchmark; rcs=$$?; \
	$(foreach group,$(E2E_GROUPS),BP_TEST_HOME=e2e-$(group) $(PY) -m pytest -p no:cacheprovider -m "e2e and $(group)" tests/e2e \
	  > .local/test-e2e-$(group).log 2>&1 & pids="$$pids $$!";) \
	$(LOW_PRIORITY) $(PY) -m pytest -m "not e2e and not benchmark" & upid=$$!; wait $$upid; rcs="$$rcs $$?"; \
	for pid in $$pids; do wait $$pid; rcs="$$rcs $$?"; done; \
	for group in $(E2E_GROUPS); do \
	  echo "=== end-to-end tests, $$group (.local/test-e2e-$$group.log) ==="; cat .local/test-e2e-$$group.log; \
	done; \
	for rc in $$rcs; do \
	  if [ $$rc -eq 5 ]; then echo "make test: a pytest collected no tests: failing" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

test-fast: venv browser ## The suite without the end-to-end tests that start Airflow
	@$(PY) -m pytest -m "not e2e"

up: $(STAMP) ## Start the local stack and leave it running (prints the UI URL and credentials)
	@$(PY) -m devstack up

down: $(STAMP) ## Stop what `make up` started
	@$(PY) -m devstack down

dashboards: $(STAMP) ## Write the Grafana dashboards, alert rules and docs/dashboards.md from include/observability
	@PYTHONPATH=. $(PY) -m include.observability.build

dashboard-pictures: $(STAMP) ## Draw docs/dashboards/*.png: each provisioned panel's query over the synthetic month
	@$(PY) -m devstack.dashboard_pictures

bench: venv ## Run the benchmarks in bench/
	@for script in bench/[!_]*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean: down ## Remove the local stack's state (.local/) and caches; keeps .venv
	rm -rf .local .pytest_cache .ruff_cache
