#!/usr/bin/env bash
# Prepares a GPU machine for tools/gpu_check.py from files carried in .gpu/ (nothing can be fetched
# there): the pip-bundled Triton's server files (triton.tar.xz), wheels (numpy < 2 for the python
# backend, the gRPC and Triton client packages) and the MiniLM-L-6 shape (config and tokenizer files).
# The reference and the client load run on the image's Python (numpy 2, sentence-transformers); the model
# build, export, server and Triton's python backend run in a venv whose numpy is 1.26 and which sees the
# image's packages after its own.
# transformers 5 does not import under numpy 1.26, so where .gpu/serve-site.tar.xz is carried (unpacked
# transformers 4.57, huggingface_hub 0.36, tokenizers 0.22) the venv sees those before the image's.
set -euo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site $(ls .gpu/whl/*.whl | grep -v numpy)
python3 -m venv --system-site-packages /tmp/venv
image_site=$(python3 -c 'import site; print(site.getsitepackages()[0])')
venv_site=$(/tmp/venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
serve_site=""
if [ -f .gpu/serve-site.tar.xz ]; then
  mkdir -p /tmp/serve-site && tar xJf .gpu/serve-site.tar.xz -C /tmp/serve-site && serve_site=/tmp/serve-site
fi
printf '%s\n/tmp/site\n%s\n' "$serve_site" "$image_site" | sed '/^$/d' > "$venv_site/zz-image-packages.pth"
# The image's scipy, scikit-learn, jax and others are built for numpy 2 and fail under 1.26, and transformers
# imports them where it finds them: hide them from the venv (and the python backend's stubs, which use it).
hidden='"sklearn", "scipy", "jax", "jaxlib", "flax", "optax", "tensorflow", "pandas", "cv2", "numba", "cupy"'
echo "import sys; [sys.modules.setdefault(m, None) for m in ($hidden)]" > "$venv_site/zz-hide-numpy2-builds.pth"
/tmp/venv/bin/python -m pip install -q --no-index --no-deps --no-compile .gpu/whl/numpy-*.whl
tar xJf .gpu/triton.tar.xz -C /tmp
export USE_FLAX=0 USE_TF=0 CROSSRANK_TRITON_DIR=/tmp/triton CROSSRANK_SERVE_PYTHON=/tmp/venv/bin/python PYTHONUNBUFFERED=1
/tmp/venv/bin/python -c 'import numpy, torch, tritonclient, grpc, transformers; print("serve venv: numpy", numpy.__version__, "torch", torch.__version__, "grpc", grpc.__version__, "transformers", transformers.__version__)' || true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# The python backend's stub loads the serving interpreter's libpython; show that it resolves.
libdir=$(/tmp/venv/bin/python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
LD_LIBRARY_PATH=$libdir ldd /tmp/triton/backends/python/triton_python_backend_stub | grep -E 'python|not found' || true
PYTHONPATH=/tmp/site:bench python3 tools/gpu_check.py --shape-dir .gpu/minilm-shape --out "$OUT" "$@"
