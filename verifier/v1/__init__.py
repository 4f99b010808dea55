"""Generated protobuf/gRPC modules for verifier.v1 (regenerate with `python scripts/gen_proto.py`; never edit)."""
