"""Generated gRPC code for crossrank.v1 (see tools/gen_proto.py); do not edit."""
