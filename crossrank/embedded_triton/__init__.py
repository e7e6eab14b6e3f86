"""Embedded mode: the pip-bundled `tritonserver` as a supervised child process (`launcher`), and the
model repository prepared before it starts (`model_setup`: export on first start, reuse after)."""
