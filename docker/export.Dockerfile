# crossrank export: fills a Triton model repository (an init container, a Kubernetes Job or a compose
# one-shot service). Needs the Hugging Face hub, or a model directory mounted into the container. Built by
# `make images` from the wheelhouse in build/wheelhouse; BASE is any Debian-based image with Python 3.11.
ARG BASE=python:3.11-slim
FROM ${BASE}
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels \
    --mount=type=bind,source=requirements,target=/tmp/requirements \
    python3 -m venv /opt/crossrank \
 && /opt/crossrank/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/requirements/server.txt \
 && /opt/crossrank/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps crossrank crossrank-client \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin crossrank \
 && mkdir -p /models/repository /cache && chown 10001 /models /models/repository /cache
USER 10001
ENV PATH=/opt/crossrank/bin:$PATH PYTHONUNBUFFERED=1 HF_HOME=/cache/huggingface
ENTRYPOINT ["crossrank", "export"]
CMD ["cross-encoder/ms-marco-MiniLM-L-6-v2", "--name", "ms-marco-minilm-l-6-v2", "--repository", "/models/repository"]
