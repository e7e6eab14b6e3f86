"""The gateway: the typed gRPC and HTTP API in front of Triton.

`transport/` speaks the wire protocols, `core/` holds the request logic that does not depend on a wire
protocol, and `backend/` is the seam to whatever scores pairs (Triton in production, fakes in tests). The
gateway never imports `export`: what it knows of a model travels in `crossrank.model_info`.
"""
