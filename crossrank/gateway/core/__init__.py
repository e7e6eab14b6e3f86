"""Transport-free request logic: validation, admission and API keys, activations, chunking, the error
vocabulary, metrics, and the scoring core that ties them to a backend."""
