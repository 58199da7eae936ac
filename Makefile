# Shadowlane: two commands from a fresh clone.
#   make demo   sets everything up (venv, Kafka jars from Maven Central) and runs the demo
#   make test   sets everything up and runs lint, types and the whole test suite (real broker)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup kafka-install demo test lint unit integration bench bench-quick schemas kafka-start kafka-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) kafka-install

kafka-install: $(STAMP)
	$(BIN)/shadowlane kafka install

demo: setup
	$(BIN)/shadowlane demo --requests 200 --ab-requests 200

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

integration: setup
	$(BIN)/python -m pytest tests/integration

bench: setup
	$(BIN)/python -m tests.bench.run

bench-quick: setup
	$(BIN)/python -m tests.bench.run --quick

schemas: $(STAMP)
	$(BIN)/python -m schemas.export

kafka-start: setup
	$(BIN)/shadowlane kafka start

kafka-stop: $(STAMP)
	$(BIN)/shadowlane kafka stop

clean:
	-$(BIN)/shadowlane kafka stop
	rm -rf .state
