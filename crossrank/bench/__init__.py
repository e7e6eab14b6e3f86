"""`crossrank bench` / `make bench`: crossrank served vs in-process ONNX Runtime vs sentence-transformers,
side by side on the same model directory and the same seeded workload, in one run."""
