#!/usr/bin/env bash
# Makes crossrank/debian-base:bookworm, a Debian 12 image with Python 3.11, venv and libpython (the Triton
# python backend's stub links it), from Debian's package mirror alone, for machines that reach no image
# registry: `BASE=crossrank/debian-base:bookworm make images`. Needs mmdebstrap (Debian package) and root.
set -euo pipefail
name=${1:-crossrank/debian-base:bookworm}
docker=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
if "$docker" image inspect "$name" >/dev/null 2>&1; then echo "$name exists"; exit 0; fi
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mmdebstrap --quiet --variant=apt --include=python3,python3-venv,libpython3.11,ca-certificates,passwd \
  bookworm "$work/base.tar" "$mirror"
"$docker" import "$work/base.tar" "$name" >/dev/null
echo "$name imported from $mirror"
