# newsmon — every target installs what it needs, and is fast when that is already done.
# Quick start: `make run` (service + local broker) and `make test` (whole suite).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KAFKA_CACHE := .cache/kafka
KAFKA_LIB_STAMP := $(KAFKA_CACHE)/lib/.complete
TYPECHECK_TREE := .cache/typecheck/newsmon

.DEFAULT_GOAL := help
.PHONY: help system-deps install kafka-jars kafka kafka-stop run test test-unit lint typecheck-tree bench clean distclean wheel-check lexicon

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Debian packages the tests and tools use: Prometheus + promtool (metrics tests, rules), kcat,
# Chromium + chromedriver (browser tests of `newsmon web`, driven by Playwright's Python API),
# with fonts for Latin, Cyrillic (DejaVu) and Korean (Nanum) headlines.
SYSTEM_STAMP := .cache/system-deps.installed
$(SYSTEM_STAMP):
	@mkdir -p .cache
	@if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v kcat >/dev/null \
	        || ! command -v chromium >/dev/null; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus kcat \
	        chromium chromium-driver fonts-dejavu-core fonts-nanum >/dev/null; \
	fi
	@touch $@

system-deps: $(SYSTEM_STAMP) ## Install Prometheus, promtool, kcat and Chromium from Debian (apt-get)

install: $(STAMP) ## Create .venv and install newsmon (editable) with dev tools; .venv/bin/newsmon is the CLI

# Apache Kafka's jars from Maven Central, resolved by deploy/kafka/pom.xml into a gitignored cache.
$(KAFKA_LIB_STAMP): deploy/kafka/pom.xml
	@command -v mvn >/dev/null || { echo "mvn not found: install Maven (apt-get install maven) and Java 17" >&2; exit 1; }
	rm -rf $(KAFKA_CACHE)/lib
	mvn -B -q -f deploy/kafka/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(abspath $(KAFKA_CACHE)/lib) -DincludeScope=runtime
	@touch $@

kafka-jars: $(KAFKA_LIB_STAMP) ## Fetch the Kafka broker jars (Maven) into .cache/kafka/lib

kafka: install kafka-jars ## Start the local single-node Kafka broker on 127.0.0.1:9092 (background)
	$(BIN)/newsmon broker start

kafka-stop: install ## Stop the local Kafka broker started by `make kafka`
	$(BIN)/newsmon broker stop

run: install kafka-jars ## Run all services (starts a local broker unless NEWSMON_KAFKA_BOOTSTRAP is set)
	exec $(BIN)/newsmon run

# pytest exits 5 when it collected no test: say so plainly instead of a bare make error.
# Two pytest-xdist workers: one runs the fault suite (tests/faults as one unit, started first:
# ~5 of the suite's minutes, mostly waiting on service processes and brokers), the other the
# rest, module by module (tests/conftest.py schedules it); each worker starts its own session
# broker. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
test: install kafka-jars system-deps ## Run the whole test suite against a real local broker (and real Prometheus)
	@$(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS)); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

test-unit: install ## Run only the pure unit tests (no broker)
	$(BIN)/python -m pytest tests/unit

# mypy names modules after their paths; this tree of links shows it the installed layout
# (newsmon = services/, newsmon.shared = shared/) so imports resolve as they do at run time.
typecheck-tree:
	@mkdir -p $(TYPECHECK_TREE)
	@find $(TYPECHECK_TREE) -maxdepth 1 -type l -delete
	@for f in services/*; do ln -sfn "$(abspath .)/$$f" "$(TYPECHECK_TREE)/$$(basename $$f)"; done
	@ln -sfn "$(abspath shared)" "$(TYPECHECK_TREE)/shared"

lint: install typecheck-tree ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

wheel-check: install ## Build the wheel and check it installs only the `newsmon` package
	rm -rf dist && $(BIN)/python -m build --wheel --outdir dist . >/dev/null
	$(BIN)/python -c "import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); \
	    bad = [n for n in names if n.split('/')[0] in ('services', 'shared')]; \
	    print('\n'.join(bad) or 'wheel ok: only newsmon/ and metadata'); sys.exit(1 if bad else 0)" dist/*.whl

# The names section of the classifier lexicon is generated from CLDR (babel); a unit test fails
# when the committed file differs from what this writes.
lexicon: install ## Regenerate services/classifier/lexicon_names.toml (country/city names from CLDR)
	$(BIN)/python -m newsmon.classifier.names --write

bench: install kafka-jars ## Run the benchmarks and write BENCHMARKS.md
	$(BIN)/python -m bench

clean: ## Remove caches of tools (keeps .venv and Kafka jars)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist .cache/typecheck

distclean: clean ## Remove everything installed by make (venv, Kafka jars and data)
	rm -rf $(VENV) .cache
