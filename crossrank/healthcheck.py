"""`python -m crossrank.healthcheck [--target host:port] [--service NAME]`: exits 0 when the gRPC health
service reports SERVING, 1 otherwise. For container HEALTHCHECKs, where no grpc probe binary exists."""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def default_target() -> str:
    """The gateway's own port where CROSSRANK_PORT sets it (as `crossrank serve` reads it), else 50051."""
    return f"127.0.0.1:{os.environ.get('CROSSRANK_PORT') or 50051}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default=default_target())
    parser.add_argument("--service", default="crossrank.v1.CrossEncoderService")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    with grpc.insecure_channel(args.target) as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout).status
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name}", file=sys.stderr)
            return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    print(name)
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    raise SystemExit(main())
