# Triton Inference Server for crossrank model repositories.
# NGC release 24.10 = Triton 2.51.0 (the same server as the pip-bundled one used in development),
# CUDA 12.6, Ubuntu 22.04, Python 3.10. Its onnxruntime and tensorrt backends serve the native engines;
# crossrank adds only what its python-backend models import.
FROM nvcr.io/nvidia/tritonserver:24.10-py3

COPY requirements/triton-python-backend.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && rm /tmp/requirements.txt

# The image's unprivileged user (uid 1000); the model repository is mounted read-only at /models.
USER 1000
EXPOSE 8000 8001 8002
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models/repository", "--strict-readiness=true", "--exit-on-error=true"]
