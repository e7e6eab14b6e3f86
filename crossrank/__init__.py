"""crossrank: serves cross-encoders (rerankers and sentence-pair classifiers) through Triton Inference Server.

Layers: `export` writes a Triton model repository; `triton_launcher` runs the pip-bundled Triton (embedded
mode); the gateway (`app`, `server`, `servicer`, `interceptor`) exposes the typed gRPC API over a
transport-agnostic core (`scoring`) and a backend seam (`backend`, `triton_backend`).
"""

__version__ = "0.1.0"
