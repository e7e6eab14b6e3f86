# crossrank export: fills a Triton model repository (an init container, a Kubernetes Job or a compose
# one-shot service). Needs the Hugging Face hub, or a model directory mounted into the container.
FROM python:3.11-slim
WORKDIR /src
COPY requirements/gateway.txt requirements/server.txt requirements/
# torch 2.13.0 exactly; pip takes the build the platform's index serves.
RUN python -m venv /opt/crossrank && /opt/crossrank/bin/pip install --no-cache-dir -r requirements/server.txt
COPY pyproject.toml README.md ./
COPY crossrank crossrank
COPY client client
RUN /opt/crossrank/bin/pip install --no-cache-dir --no-deps . ./client \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin crossrank
USER 10001
ENV PATH=/opt/crossrank/bin:$PATH PYTHONUNBUFFERED=1 HF_HOME=/cache/huggingface
ENTRYPOINT ["crossrank", "export"]
CMD ["cross-encoder/ms-marco-MiniLM-L-6-v2", "--name", "ms-marco-minilm-l-6-v2", "--repository", "/models/repository"]
