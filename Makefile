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

.PHONY: native tools setup kafka-install demo test lint unit integration chaos bench bench-quick schemas docs-settings docs prom-check kube-schemas helm-check kafka-start kafka-stop clean lock

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

# operator tools, built from the Go module proxy into .venv/bin at pinned versions: helm and
# kubeconform validate deploy/helm, promtool checks deploy/prometheus, docker-compose checks
# docker-compose.yml. The stamp names the versions, so bumping one rebuilds (Go's cache keeps it quick).
HELM_VERSION        := v4.3.2
KUBECONFORM_VERSION := v0.8.0
PROMTOOL_VERSION    := v0.316.0
COMPOSE_VERSION     := v5.6.0
TOOLS := $(VENV)/.tools-helm$(HELM_VERSION)-kubeconform$(KUBECONFORM_VERSION)-promtool$(PROMTOOL_VERSION)-compose$(COMPOSE_VERSION)

$(TOOLS): $(STAMP)
	@command -v go >/dev/null || { echo "go not found: make tools builds helm, kubeconform, promtool and docker-compose with Go" >&2; exit 1; }
	GOBIN=$(CURDIR)/$(BIN) GOFLAGS=-buildvcs=false go install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	GOBIN=$(CURDIR)/$(BIN) GOFLAGS=-buildvcs=false go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)
	GOBIN=$(CURDIR)/$(BIN) GOFLAGS=-buildvcs=false go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
	# compose's go.mod has exclude directives, which `go install pkg@version` refuses: build it as the main module
	cd "$$(go mod download -json github.com/docker/compose/v5@$(COMPOSE_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')" \
	  && GOFLAGS=-buildvcs=false go build -o $(CURDIR)/$(BIN)/docker-compose ./cmd
	touch $@

tools: $(TOOLS)

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

test: setup tools lint docs prom-check helm-check
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

# the container image's dependencies (deploy/docker), pinned with their hashes for the image's Python
# (3.11, linux x86_64) whatever machine runs this; the Dockerfile installs them with --require-hashes.
# Rerun after changing pyproject.toml's dependencies (kept pins stay; `rm` a lock to re-resolve it all).
LOCK_TARGET := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
               --custom-compile-command "make lock" --quiet
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra workers --extra rollout $(LOCK_TARGET) \
		-o deploy/docker/requirements.lock
	$(BIN)/uv pip compile deploy/docker/build-requirements.in $(LOCK_TARGET) -o deploy/docker/build.lock

schemas: $(NATIVE)
	$(BIN)/python -m shadowlane.contracts.export

# docs/settings-reference.md, from the settings model (a unit test fails when it is stale)
docs-settings: $(STAMP)
	$(BIN)/python -m shadowlane.settings_reference > docs/settings-reference.md

# deploy/prometheus: the config and its rules load, and every alert's unit tests (firing and not) pass
prom-check: $(TOOLS)
	$(BIN)/promtool check config deploy/prometheus/prometheus.yml
	$(BIN)/promtool check rules deploy/prometheus/alerts.yml
	$(BIN)/promtool test rules deploy/prometheus/tests/*.yml

# kubeconform's schemas for what deploy/helm renders: Kubernetes kinds and the KEDA and
# prometheus-operator CRDs, from Go modules pinned in deploy/tools/kube_schemas.py (the proxy serves them)
KUBE_SCHEMAS := $(VENV)/kube-schemas
$(KUBE_SCHEMAS)/.stamp: $(STAMP) deploy/tools/kube_schemas.py
	$(BIN)/python deploy/tools/kube_schemas.py $(KUBE_SCHEMAS)
	touch $@

kube-schemas: $(KUBE_SCHEMAS)/.stamp

# deploy/helm: lint, then the manifests of the default values and of every option (ci/full-values.yaml)
# against the strict schemas (a misspelt or misplaced field fails)
CHART := deploy/helm/shadowlane
helm-check: $(TOOLS) $(KUBE_SCHEMAS)/.stamp
	$(BIN)/helm lint --strict $(CHART)
	$(BIN)/helm lint --strict $(CHART) -f $(CHART)/ci/full-values.yaml
	$(BIN)/helm template shadowlane $(CHART) > $(VENV)/helm-default.yaml
	$(BIN)/helm template shadowlane $(CHART) -f $(CHART)/ci/full-values.yaml > $(VENV)/helm-full.yaml
	$(BIN)/kubeconform -strict -summary -schema-location '$(KUBE_SCHEMAS)/{{ .ResourceKind }}{{ .KindSuffix }}.json' \
	  $(VENV)/helm-default.yaml $(VENV)/helm-full.yaml

# the docs site (mkdocs.yml): --strict fails on a page missing from the nav, a broken link or anchor
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(VENV)/site

kafka-start: setup
	$(BIN)/shadowlane kafka start

kafka-stop: $(STAMP)
	$(BIN)/shadowlane kafka stop

# the broker's jars and data stay in $$SHADOWLANE_HOME (default ~/.local/state/shadowlane)
clean:
	-$(BIN)/shadowlane kafka stop
	rm -rf build dist src/*.egg-info
