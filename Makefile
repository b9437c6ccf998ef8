# One dev loop for people, CI and hooks. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= examples/router.yaml

.DEFAULT_GOAL := help
.PHONY: help venv test test-unit test-integration test-faults lint demo demo-down report-demo bench eval clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create the virtualenv and install the project with its dev tools

test: $(STAMP) ## run every test: unit, then integration on a real 3-broker Kafka cluster and OpenBao
	$(BIN)/pytest -m unit -q
	$(BIN)/pytest -m "integration and not faults" -q

test-unit: $(STAMP) ## run the unit tests only (no broker, no KMS)
	$(BIN)/pytest -m unit -q

test-integration: $(STAMP) ## run the integration tests only (the fault subset included, not the slow faults)
	$(BIN)/pytest -m "integration and not faults" -q

test-faults: $(STAMP) ## the slow cluster fault scenarios (kills at every transaction step, zombies, broker faults)
	$(BIN)/pytest -m "integration and faults" -q

lint: $(STAMP) ## ruff and mypy --strict
	$(BIN)/ruff check router tests bench eval
	$(BIN)/mypy

DEMO_ARGS ?=
demo: $(STAMP) ## start the local secured cluster and run the router demo on it (DEMO_ARGS=--insecure: PLAINTEXT, no ACLs)
	$(BIN)/residency-router demo --config $(CONFIG) $(DEMO_ARGS)

demo-down: $(STAMP) ## stop the demo's cluster and remove its state
	$(BIN)/residency-router devcluster down

REPORT_DIR ?= build/report
report-demo: $(STAMP) ## run the demo, then write its evidence report to REPORT_DIR and a headless-chromium screenshot of its first screen (apt-get install chromium-headless-shell)
	$(BIN)/residency-router demo --config $(CONFIG) $(DEMO_ARGS)
	@state=$$($(BIN)/python -c 'from router.devtools.devcluster.launcher import default_state_dir; print(default_state_dir())'); \
	work=$$(ls -td "$$state"/demo-*/ | head -1); \
	cfg="$$work/operator.yaml"; [ -f "$$cfg" ] || cfg="$$work/router.yaml"; \
	$(BIN)/residency-router report --config "$$cfg" --out $(REPORT_DIR); rc=$$?; [ $$rc -le 1 ] || exit $$rc; \
	browser=$$(command -v chromium-headless-shell || command -v chromium) || \
	  { echo "no headless browser for the screenshot: apt-get install chromium-headless-shell"; exit 1; }; \
	$$browser --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --window-size=1280,900 \
	  --screenshot=$(REPORT_DIR)/first-screen.png "file://$$(realpath $(REPORT_DIR))/report.html" 2>$(REPORT_DIR)/browser.log; \
	if grep CONSOLE $(REPORT_DIR)/browser.log; then echo "the report page logged console messages"; exit 1; fi; \
	echo "report: $(REPORT_DIR)/report.html; first screen: $(REPORT_DIR)/first-screen.png"; exit $$rc

BENCH_ARGS ?= --profile
bench: $(STAMP) ## micro-benchmarks, then the pipeline benchmark: per-stage table (bench_core.py), pipeline table, router/baseline last (own dev cluster unless ROUTER_BENCH_BOOTSTRAP)
	@for b in bench/bench_*.py; do case "$$b" in bench/bench_pipeline.py|bench/bench_core.py) continue;; esac; echo "== $$b"; $(BIN)/python $$b || exit 1; done
	@echo "== bench/bench_pipeline.py $(BENCH_ARGS)"; $(BIN)/python bench/bench_pipeline.py $(BENCH_ARGS)

eval: $(STAMP) ## classification quality on the labelled corpus in eval/: P/R/F1, misses, µs per record, goals (a report; eval/report.json)
	$(BIN)/python eval/evaluate.py --json eval/report.json

clean: ## remove the virtualenv and caches (not the Kafka download cache)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
