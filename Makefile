# Shadowlane: two commands from a fresh clone.
#   make demo   sets everything up (venv, Kafka jars from Maven Central) and runs the demo
#   make test   sets everything up and runs lint, types and the whole test suite (real broker)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# the comparator's native hot path (Rust, pyo3): built by maturin with cargo from rustup's home
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE       := $(VENV)/.native-stamp
# every file the extension is built from, at any depth under native/src (a join/*.rs edit rebuilds it)
NATIVE_FILES := native/Cargo.toml native/Cargo.lock native/pyproject.toml native/shadowlane_native.pyi \
                $(shell find native/src -type f -name '*.rs')

.PHONY: native setup kafka-install demo test lint unit integration chaos bench bench-quick schemas kafka-start kafka-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NATIVE): $(STAMP) $(NATIVE_FILES)
	@command -v cargo >/dev/null || { echo "cargo not found: native/ needs a Rust toolchain (rustup)" >&2; exit 1; }
	$(BIN)/pip install --quiet ./native
	touch $(NATIVE)

native: $(NATIVE)

setup: $(NATIVE) kafka-install

kafka-install: $(STAMP)
	$(BIN)/shadowlane kafka install

demo: setup
	$(BIN)/shadowlane demo --requests 200 --ab-requests 200

lint: $(NATIVE)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd native && cargo fmt --check && cargo clippy --release --quiet -- -D warnings

test: setup lint
	$(BIN)/python -m pytest

unit: $(NATIVE)
	$(BIN)/python -m pytest tests/unit

integration: setup
	$(BIN)/python -m pytest tests/integration

chaos: setup
	$(BIN)/python -m tests.chaos

bench: setup
	$(BIN)/python -m tests.bench.run

bench-quick: setup
	$(BIN)/python -m tests.bench.run --quick

schemas: $(NATIVE)
	$(BIN)/python -m shadowlane.contracts.export

kafka-start: setup
	$(BIN)/shadowlane kafka start

kafka-stop: $(STAMP)
	$(BIN)/shadowlane kafka stop

# the broker's jars and data stay in $$SHADOWLANE_HOME (default ~/.local/state/shadowlane)
clean:
	-$(BIN)/shadowlane kafka stop
	rm -rf build dist src/*.egg-info
