"""The committed generated modules must match what the proto produces today (run scripts/gen_proto.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("verifier_pb2.py", "verifier_pb2.pyi", "verifier_pb2_grpc.py")


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    stale = [
        name for name in GENERATED
        if (tmp_path / "verifier" / "v1" / name).read_bytes() != (ROOT / "verifier" / "v1" / name).read_bytes()
    ]
    assert not stale, f"stale generated code {stale}: run `python scripts/gen_proto.py` and commit the result"


def test_services_are_importable() -> None:
    from verifier.v1 import verifier_pb2, verifier_pb2_grpc

    names = {s.full_name for s in verifier_pb2.DESCRIPTOR.services_by_name.values()}
    assert names == {"verifier.v1.Verifier", "verifier.v1.ReferenceValues", "verifier.v1.Workloads"}
    assert hasattr(verifier_pb2_grpc, "VerifierStub")
    assert verifier_pb2.EVIDENCE_KIND_NITRO == 1
