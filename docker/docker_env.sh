#!/usr/bin/env bash
# For `make docker-test` on a Debian machine, as root: installs Docker (Debian's docker.io), docker-compose
# (compose v1) and mmdebstrap where missing, and starts dockerd where none answers. dockerd runs without a
# bridge or iptables rules: every container of the test runs on the host's network, so its traffic stays on
# this machine's loopback addresses.
set -euo pipefail
missing=""
command -v dockerd >/dev/null || missing="$missing docker.io"
command -v docker-compose >/dev/null || missing="$missing docker-compose"
command -v mmdebstrap >/dev/null || missing="$missing mmdebstrap"
if [ -n "$missing" ]; then
  echo "installing:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
docker=/usr/bin/docker
if ! "$docker" info >/dev/null 2>&1; then
  echo "starting dockerd (--bridge=none --iptables=false; log: /var/log/crossrank-dockerd.log)"
  nohup dockerd --bridge=none --iptables=false >/var/log/crossrank-dockerd.log 2>&1 &
  for _ in $(seq 60); do "$docker" info >/dev/null 2>&1 && break; sleep 1; done
  "$docker" info >/dev/null || { echo "dockerd did not start:"; tail -20 /var/log/crossrank-dockerd.log; exit 1; }
fi
"$docker" version --format 'docker: client {{.Client.Version}}, server {{.Server.Version}}'
