# crossrank gateway: the typed gRPC and HTTP API in front of an external Triton. No torch, transformers,
# tokenizers or Triton in this image (requirements/gateway.txt). Built by `make images` from the wheelhouse in
# build/wheelhouse; BASE is any Debian-based image with Python 3.11 and venv.
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels \
    --mount=type=bind,source=requirements/gateway.txt,target=/tmp/gateway.txt \
    python3 -m venv /opt/crossrank \
 && /opt/crossrank/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/gateway.txt \
 && /opt/crossrank/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps crossrank crossrank-client

FROM ${BASE}
COPY --from=build /opt/crossrank /opt/crossrank
COPY server_config/crossrank.yaml /etc/crossrank/crossrank.yaml
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin crossrank
USER 10001
ENV PATH=/opt/crossrank/bin:$PATH PYTHONUNBUFFERED=1
EXPOSE 50051 8080 9400
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-m", "crossrank.healthcheck"]
ENTRYPOINT ["crossrank", "serve", "--config", "/etc/crossrank/crossrank.yaml"]
CMD ["--triton-url", "triton:8001"]
