# crossrank gateway: the typed gRPC API in front of an external Triton. No torch, transformers, tokenizers
# or Triton in this image (requirements/gateway.txt).
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements/gateway.txt requirements/gateway.txt
RUN python -m venv /opt/crossrank && /opt/crossrank/bin/pip install --no-cache-dir -r requirements/gateway.txt
COPY pyproject.toml README.md ./
COPY crossrank crossrank
COPY client client
RUN /opt/crossrank/bin/pip install --no-cache-dir --no-deps . ./client

FROM python:3.11-slim
COPY --from=build /opt/crossrank /opt/crossrank
COPY server_config/crossrank.yaml /etc/crossrank/crossrank.yaml
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin crossrank
USER 10001
ENV PATH=/opt/crossrank/bin:$PATH PYTHONUNBUFFERED=1
EXPOSE 50051 8080 9400
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "crossrank.healthcheck", "--target", "127.0.0.1:50051"]
ENTRYPOINT ["crossrank", "serve", "--config", "/etc/crossrank/crossrank.yaml"]
CMD ["--triton-url", "triton:8001"]
