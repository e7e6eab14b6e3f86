#!/bin/sh
# Build step of docker/triton-cpu.Dockerfile: /opt/triton/{server -> the wheel's tritonserver, backends/python
# with the stub for this image's Python, env (library path for the stub's libpython and the wheel's libs)}.
set -eu
python=/opt/triton-env/bin/python3
site=$($python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
version=$($python -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
libdir=$($python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
server=$site/pytriton/tritonserver
ln -s "$server" /opt/triton/server
mkdir -p /opt/triton/backends/python
cp "$server/backends/python/libtriton_python.so" "$server/backends/python/triton_python_backend_utils.py" \
   /opt/triton/backends/python/
cp "$server/python_backend_stubs/$version/triton_python_backend_stub" /opt/triton/backends/python/
chmod 755 /opt/triton/backends/python/triton_python_backend_stub /opt/triton/triton-cpu-entrypoint.sh
echo "LD_LIBRARY_PATH=$libdir:$site/nvidia_pytriton.libs" > /opt/triton/env
