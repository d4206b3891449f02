# The two commands a fresh machine needs: `make demo` and `make test`. Each sets itself up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install deploy-tools demo test test-unit bench lint kafka-start kafka-stop clean

install: $(VENV)/.installed

# The native core (native/, Rust) is compiled by pip through setuptools-rust with the toolchain pinned in
# native/rust-toolchain.toml and the crates pinned in native/Cargo.lock; a change to them rebuilds it.
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/rust-toolchain.toml $(wildcard native/src/*.rs)

$(VENV)/.installed: pyproject.toml $(NATIVE_SOURCES)
	bash scripts/check-rust.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Offline checks of deploy/kubernetes (tests/unit/test_deploy.py): kustomize from the Go module proxy into the
# cache, and the Kubernetes/Strimzi schema validators from npm. Without them those tests skip (CI fails).
CACHE ?= $(or $(REWARDSTREAM_CACHE),$(HOME)/.cache/rewardstream)
deploy-tools:
	test -x $(CACHE)/bin/kustomize || GOBIN=$(CACHE)/bin GOFLAGS=-mod=mod go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1
	cd deploy/check && npm ci --no-audit --no-fund --silent

demo: install
	$(BIN)/rewardstream demo

test: install
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q tests/unit

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy pipeline
	cd native && cargo test --release --locked -q

kafka-start: install
	$(BIN)/rewardstream kafka start

kafka-stop: install
	$(BIN)/rewardstream kafka stop

clean:
	rm -rf $(VENV) out build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
