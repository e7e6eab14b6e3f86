#!/usr/bin/env bash
# Prepares a GPU machine for tools/gpu_check.py from files carried in .gpu/ (nothing can be fetched
# there): the pip-bundled Triton's server files (triton.tar.xz), wheels (numpy < 2 for the python
# backend, the gRPC and Triton client packages) and the MiniLM-L-6 shape (config and tokenizer files).
set -euo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m venv --system-site-packages /tmp/venv
# The image's packages (torch, transformers, ...) live in its own venv; the new one sees them after its own.
image_site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
venv_site=$(/tmp/venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
echo "$image_site" > "$venv_site/image-packages.pth"
/tmp/venv/bin/python -m pip install -q --no-index --no-deps --no-compile .gpu/whl/*.whl
tar xJf .gpu/triton.tar.xz -C /tmp
export CROSSRANK_TRITON_DIR=/tmp/triton PATH=/tmp/venv/bin:$PATH PYTHONUNBUFFERED=1
python -c 'import numpy, torch, transformers, tritonclient, grpc; print("numpy", numpy.__version__, "torch", torch.__version__, "transformers", transformers.__version__, "grpc", grpc.__version__)'
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python tools/gpu_check.py --shape-dir .gpu/minilm-shape --out "$OUT"
