"""The gateway's doors: the gRPC server (servicer, error interceptor, health, reflection) and the HTTP API."""
