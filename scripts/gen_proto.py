#!/usr/bin/env python3
"""Regenerate the committed gRPC/protobuf modules from proto/ (run from anywhere).

    python scripts/gen_proto.py            # writes verifier/v1/{verifier,...,admin}_pb2{,_grpc}.py{,i}
    python scripts/gen_proto.py --out DIR  # writes DIR/verifier/v1/... (used by tests/unit/test_proto_fresh.py)

Equivalent to `python -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. --grpc_python_out=.
proto/verifier/v1/verifier.proto` from the repository root, with the well-known types from grpc_tools.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
# One file per concern: the appraisal API with every message, and one file per admin service.
PROTOS = (
    "verifier/v1/verifier.proto",
    "verifier/v1/reference_values.proto",
    "verifier/v1/workloads.proto",
    "verifier/v1/admin.proto",
)
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
GENERATED = tuple(f"{Path(proto).stem}{suffix}" for proto in PROTOS for suffix in SUFFIXES)


def generate(out: Path) -> list[Path]:
    """Run protoc into `out`; return the generated files."""
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    out.mkdir(parents=True, exist_ok=True)
    for proto in PROTOS:
        (out / Path(proto).parent).mkdir(parents=True, exist_ok=True)
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_ROOT / proto),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed for {proto}")
    return [out / "verifier" / "v1" / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository root)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
