"""The committed generated modules must match what the proto produces today (run scripts/gen_proto.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from gen_proto import GENERATED  # noqa: E402  (one list of generated files, the generator's own)


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    stale = [
        name
        for name in GENERATED
        if (tmp_path / "verifier" / "v1" / name).read_bytes() != (ROOT / "verifier" / "v1" / name).read_bytes()
    ]
    assert not stale, f"stale generated code {stale}: run `python scripts/gen_proto.py` and commit the result"


def test_services_are_importable() -> None:
    from verifier.v1 import (
        admin_pb2,
        reference_values_pb2,
        reference_values_pb2_grpc,
        verifier_pb2,
        verifier_pb2_grpc,
        workloads_pb2,
        workloads_pb2_grpc,
    )

    names = {
        s.full_name
        for module in (verifier_pb2, reference_values_pb2, workloads_pb2, admin_pb2)
        for s in module.DESCRIPTOR.services_by_name.values()
    }
    assert names == {
        "verifier.v1.Verifier",
        "verifier.v1.ReferenceValues",
        "verifier.v1.Workloads",
        "verifier.v1.PolicyService",
        "verifier.v1.AdminTokenService",
        "verifier.v1.AuditService",
    }
    assert hasattr(verifier_pb2_grpc, "VerifierStub") and not hasattr(verifier_pb2_grpc, "WorkloadsStub")
    assert hasattr(reference_values_pb2_grpc, "ReferenceValuesStub") and hasattr(workloads_pb2_grpc, "WorkloadsStub")
    assert verifier_pb2.EVIDENCE_KIND_NITRO == 1
