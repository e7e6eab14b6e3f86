# crossrank/triton-cpu: Triton Inference Server for CPUs, from the pip-bundled tritonserver (the server the
# embedded mode runs: 2.51.0, python backend, ensembles, dynamic batching, KServe gRPC/HTTP, metrics), with
# what crossrank's python-backend models import (tokenizers, ONNX Runtime, PyTorch CPU, numpy < 2). No CUDA.
# Built by `make images` from a wheelhouse in build/wheelhouse (nothing is fetched during the build).
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG PYTRITON=nvidia-pytriton==0.7.0
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels \
    --mount=type=bind,source=requirements/triton-cpu.txt,target=/tmp/requirements.txt \
    python3 -m venv /opt/triton-env \
 && /opt/triton-env/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/requirements.txt \
 && /opt/triton-env/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps "${PYTRITON}"
COPY docker/scripts/triton-cpu-layout.sh docker/scripts/triton-cpu-entrypoint.sh /opt/triton/
# Lays the python backend out as Triton needs it (the stub for this Python beside the backend), owned by the
# unprivileged user, because Triton sets the stub's execute bit when it loads a model.
RUN sh /opt/triton/triton-cpu-layout.sh && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin triton \
 && chown -R 10001 /opt/triton/backends && mkdir -p /models/repository && chown 10001 /models/repository
USER 10001
ENV PATH=/opt/triton-env/bin:$PATH PYTHONUNBUFFERED=1
EXPOSE 8000 8001 8002
ENTRYPOINT ["/opt/triton/triton-cpu-entrypoint.sh"]
CMD ["--model-repository=/models/repository", "--strict-readiness=true", "--exit-on-error=true"]
