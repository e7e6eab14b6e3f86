"""Generated gRPC code for TEI's tei.v1 API (proto/tei/, see tools/gen_proto.py); do not edit."""
