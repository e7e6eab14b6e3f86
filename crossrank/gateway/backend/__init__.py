"""The backend seam (`base`: what the core asks of a scorer) and its Triton implementation (`triton`)."""
