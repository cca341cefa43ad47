# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints.txt -e ".[dev,all]"
	touch $(STAMP)

# A local copy of the built-in data sets, when one sits beside the checkout (no download is attempted).
SHARED_DATA := $(abspath ../shared/data)
DEMO_ENV := $(if $(MULTITASK_DATA),,$(if $(wildcard $(SHARED_DATA)/census-income),MULTITASK_DATA=$(SHARED_DATA)))

demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/multitask demo --overwrite  # runs/demo is the demo's own folder

# Headless Chromium renders the HTML report in its test: the Debian package, installed when missing.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

test: $(STAMP) chromium
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
