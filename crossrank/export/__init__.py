"""Turns a Hugging Face cross-encoder into a Triton model repository (`crossrank export`)."""
