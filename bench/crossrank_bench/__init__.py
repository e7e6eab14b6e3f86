"""`make bench`: crossrank served vs in-process ONNX Runtime vs sentence-transformers (and Infinity), side by
side on the same model directory and the same seeded workload, in one run.

A development tool, outside the server package: `pip install .` of the server does not install it; `make
setup` installs it into the development venv.
"""
