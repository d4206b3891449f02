# The two commands a fresh machine needs: `make demo` and `make test`. Each sets itself up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install deploy-tools wheel wheel-smoke demo test test-unit bench lint kafka-start kafka-stop clean

install: $(VENV)/.installed

# The native core (native/, Rust) is compiled by pip through setuptools-rust with the toolchain pinned in
# native/rust-toolchain.toml and the crates pinned in native/Cargo.lock; a change to them rebuilds it.
NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/rust-toolchain.toml $(wildcard native/src/*.rs)

$(VENV)/.installed: pyproject.toml $(NATIVE_SOURCES)
	bash scripts/check-rust.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	@# the extension is optional for users (no Rust: the Python engine); a development install must have it
	$(BIN)/python -c 'import pipeline._native' || { echo "error: the native engine did not build; rerun with: $(BIN)/pip install -v -e ." >&2; exit 1; }
	touch $@

# Offline checks of deploy/ (tests/unit/test_deploy.py, test_monitoring.py): kustomize and promtool from the Go
# module proxy into the cache (Prometheus tags its Go module v0.3xx for its 3.x releases; a stamp file records
# the version built), and the Kubernetes/Strimzi schema validators from npm. Without them those tests skip
# (CI fails).
CACHE ?= $(or $(REWARDSTREAM_CACHE),$(HOME)/.cache/rewardstream)
PROMTOOL_VERSION := v0.316.0
deploy-tools:
	test -x $(CACHE)/bin/kustomize || GOBIN=$(CACHE)/bin GOFLAGS=-mod=mod go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1
	test -f $(CACHE)/bin/.promtool-$(PROMTOOL_VERSION) || { GOBIN=$(CACHE)/bin GOFLAGS=-mod=mod CGO_ENABLED=0 \
		go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION) && touch $(CACHE)/bin/.promtool-$(PROMTOOL_VERSION); }
	cd deploy/check && npm ci --no-audit --no-fund --silent

# The sdist and the abi3 wheel (CPython 3.11 and later, the native engine inside) in dist/. auditwheel gives the
# wheel the manylinux tag of the oldest glibc its symbols allow, so pip on another distribution can tell whether
# it fits (the linux_* wheel the build makes is replaced).
wheel: install
	rm -rf dist build
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/auditwheel repair --wheel-dir dist dist/rewardstream-*-linux_*.whl
	rm dist/rewardstream-*-linux_*.whl

# The wheel installed into a fresh virtualenv with no Rust on PATH, then generate -> backfill -> fit; and the
# sdist installed without Rust, falling back to the Python engine (scripts/wheel-smoke.sh).
wheel-smoke: wheel
	bash scripts/wheel-smoke.sh $(PYTHON)

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
	rm -rf $(VENV) out build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
