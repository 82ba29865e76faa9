# x0tta6bl4 — everything a newcomer or CI needs is a target here. Each one bootstraps what it
# needs (Python venv, pinned tools) on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
X0_TOOLS_CACHE ?= $(HOME)/.cache/x0tta6bl4/tools
TOOLS_BIN := $(X0_TOOLS_CACHE)/bin
export X0_TOOLS_CACHE
DEPS_STAMP := $(VENV)/.deps-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PYTEST := $(PY) -m pytest

.PHONY: help deps tools proto proto-check up down status test test-unit test-simulation test-fuzz fuzz \
        test-integration test-system test-policy lint bench bench-consensus bench-sync bench-identity clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(DEPS_STAMP): pyproject.toml
	@echo "[deps] creating $(VENV) and installing pinned Python dependencies ..."
	@command -v $(PYTHON) >/dev/null || { echo "[deps] FAILED: $(PYTHON) is not on PATH (Python 3.11+ is needed; set PYTHON=...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) \
	  || { echo "[deps] FAILED: '$(PYTHON) -m venv $(VENV)' (on Debian: apt-get install python3-venv)"; rm -rf $(VENV); exit 1; }
	@$(PY) -m pip install -q --upgrade pip \
	  || { echo "[deps] FAILED: upgrading pip in $(VENV) (is PyPI reachable?)"; exit 1; }
	@$(PY) -m pip install -q -e '.[dev,bench]' \
	  || { echo "[deps] FAILED: pip install -e '.[dev,bench]' (the pins are in pyproject.toml; pip's reason is above)"; exit 1; }
	@rm -f $(VENV)/.deps-*; touch $@

deps: $(DEPS_STAMP) ## Python venv with pinned dependencies

tools: ## build/install the pinned real parts (SPIRE, OPA, buf, Redis, Prometheus, ...)
	@tools/build.sh || { echo "[tools] FAILED: tools/build.sh (its last lines above say which step and why)"; exit 1; }

proto: deps ## regenerate the committed gRPC/protobuf code
	@PYTHON=$(PY) tools/gen-proto.sh

proto-check: proto ## fail if the generated code is not what is committed
	@git diff --exit-code --stat -- services/ || { echo "generated code is stale: run make proto and commit"; exit 1; }

up: deps tools ## run the whole suite locally and wait until it is ready
	@$(VENV)/bin/x0 up

status: deps ## every component of the local suite (x0 status --json for machines)
	@$(VENV)/bin/x0 status

down: deps ## stop the local suite; no process is left behind
	@$(VENV)/bin/x0 down

test-policy: tools ## opa test of the authorisation policy
	@set -o pipefail; $(TOOLS_BIN)/opa test services/x0tta6bl4/platform/rego services/x0tta6bl4/policy/rego -v | tail -n 3

test-unit: deps ## pure cores and units (fast)
	@$(PYTEST) tests/unit

test-simulation: deps ## deterministic seeded multi-node simulations
	@$(PYTEST) tests/simulation

test-integration: deps tools ## real SPIRE, OPA, ... with the real services on loopback
	@$(PYTEST) tests/integration

test-system: deps tools ## whole-suite and multi-process tests
	@$(PYTEST) tests/system

test-fuzz: deps tools ## the fuzz tier with its CI budget (X0_FUZZ_BUDGET s, default 60)
	@$(PYTEST) tests/fuzz

fuzz: deps tools ## a long fuzz campaign (FUZZ_BUDGET s, default 1800; X0_FUZZ_SEED to repeat)
	@X0_FUZZ_BUDGET=$${FUZZ_BUDGET:-1800} $(PYTEST) tests/fuzz

test: deps tools test-policy ## everything CI runs
	@$(PYTEST) tests

lint: deps tools ## ruff, mypy --strict, import-linter, buf lint, opa check
	@$(VENV)/bin/ruff check services tests
	@$(VENV)/bin/mypy services/x0tta6bl4
	@$(VENV)/bin/lint-imports
	@$(TOOLS_BIN)/buf lint
	@$(TOOLS_BIN)/opa check --strict services/x0tta6bl4/platform/rego services/x0tta6bl4/policy/rego
	@$(TOOLS_BIN)/opa fmt --fail -l services/x0tta6bl4/platform/rego services/x0tta6bl4/policy/rego
	@echo "lint clean"

bench: bench-consensus bench-sync bench-identity ## all benchmarks, side by side with their peers

bench-consensus: deps tools ## consensus vs etcd and PySyncObj (bench-results/consensus.json)
	@test -f tests/bench/consensus.py || { echo "bench-consensus: not built yet (issue 3)"; exit 1; }
	@$(PY) tests/bench/consensus.py $(ARGS)

bench-sync: deps ## sync vs pycrdt (bench-results/sync.json)
	@test -f tests/bench/sync.py || { echo "bench-sync: not built yet (issue 4)"; exit 1; }
	@$(PY) tests/bench/sync.py $(ARGS)

bench-identity: deps tools ## identity: validation vs bare cryptography chain check; reconcile vs spire-server bulk create
	@$(PY) tests/bench/identity_validation.py $(ARGS)
	@$(PY) tests/bench/identity_reconcile.py $(ARGS)

clean: ## remove local state (stops the suite first)
	@-$(VENV)/bin/x0 down 2>/dev/null
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
