#!/usr/bin/env bash
# `make images`: builds crossrank's CPU images from a wheelhouse, tagged with the project's version and latest:
#   crossrank/gateway, crossrank/export, crossrank/triton-cpu
# The wheelhouse (build/wheelhouse) is filled on the host from the package index first, so the builds fetch
# nothing themselves. BASE (default python:3.11-slim) is the base image of all three: any Debian-based image
# with Python 3.11 and venv (`docker/debian_base.sh` makes one from Debian's mirror alone).
# The NGC-based GPU image (docker/triton.Dockerfile) is built separately, on a machine that reaches NGC.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BASE=${BASE:-python:3.11-slim}
IMAGES="gateway export triton-cpu"
# Debian's client where installed: it builds with the daemon's own BuildKit (a newer client wants buildx).
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
version=$($PY -c 'import crossrank; print(crossrank.__version__)')
wheelhouse=build/wheelhouse
mkdir -p "$wheelhouse"

started=$(date +%s)
echo "wheelhouse: $wheelhouse"
# torch 2.13.0 resolves to the CPU build where the index (or PIP_FIND_LINKS) serves it, as in make setup.
$PY -m pip wheel --quiet --wheel-dir "$wheelhouse" -r requirements/server.txt -r requirements/triton-cpu.txt
$PY -m pip wheel --quiet --wheel-dir "$wheelhouse" --no-deps nvidia-pytriton==0.7.0 . ./client
echo "wheelhouse ready in $(( $(date +%s) - started )) s ($(du -sh "$wheelhouse" | cut -f1))"

for image in $IMAGES; do
  t0=$(date +%s)
  DOCKER_BUILDKIT=1 "$DOCKER" build --quiet --network host --build-arg "BASE=$BASE" \
    -f "docker/$image.Dockerfile" -t "crossrank/$image:$version" -t "crossrank/$image:latest" . >/dev/null
  size=$("$DOCKER" image inspect -f '{{.Size}}' "crossrank/$image:$version")
  echo "crossrank/$image:$version built in $(( $(date +%s) - t0 )) s, $(( size / 1000000 )) MB"
done
echo "images built in $(( $(date +%s) - started )) s (base $BASE)"
