#!/bin/sh
# Entry point of crossrank/triton-cpu: tritonserver with the python backend laid out in the image; every
# argument is passed to tritonserver (for example --model-repository, --grpc-port, --grpc-address).
# With a read-only root file system the backend is copied to /tmp first (a writable, executable tmpfs or
# emptyDir), because Triton sets the stub's execute bit when it loads a model.
set -eu
. /opt/triton/env
export LD_LIBRARY_PATH
backends=/opt/triton/backends
if ! [ -w "$backends/python/triton_python_backend_stub" ]; then
  copy=$(mktemp -d /tmp/triton-backends.XXXXXX)
  cp -r "$backends/python" "$copy/"
  backends=$copy
fi
exec /opt/triton/server/bin/tritonserver --backend-directory="$backends" \
  --cache-directory=/opt/triton/server/caches "$@"
