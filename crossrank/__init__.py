"""crossrank: serves cross-encoders (rerankers and sentence-pair classifiers) through Triton Inference Server.

Rooms of the package (docs/architecture.md has the map):
- entry points at the top: `cli` (the `crossrank` command), `app` (serve's lifecycle), `settings`,
  `log_format`, `healthcheck` (the container HEALTHCHECK probe);
- `model_info`: the vocabulary that export writes and the gateway reads (tasks, activations, model info);
- `gateway/`: the typed API in front of Triton: `transport/` (gRPC and HTTP), `core/` (the transport-free
  request logic: validation, admission, activation, chunking, errors, metrics) and `backend/` (the seam to
  whatever scores pairs, and its Triton implementation);
- `embedded_triton/`: the pip-bundled Triton as a child process, and the model set-up before it starts;
- `export/`: a Hugging Face cross-encoder into a Triton model repository;
- `triton_models/`: the code that runs inside Triton's python backend.
"""

__version__ = "0.1.0"
