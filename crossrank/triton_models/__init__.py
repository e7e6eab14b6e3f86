"""Code that runs inside Triton's python backend.

Each python-backend model in an exported repository gets a thin `model.py` (Triton's entry point) and the
pure module beside it (`pair_tokenizer.py`, `onnx_encoder.py`), copied there by `crossrank export`. The
pure modules import neither Triton nor crossrank, so tests use them directly.
"""
