"""The shared vectors the benchmark appraises (one per TEE), their reference values and their gRPC request."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# One real vector per TEE, the same as benchmarks/bench.py.
VECTOR_IDS = {"nitro": "nitro-prod-2024-blocky", "snp": "snp-genoa-v5-vcek-oak", "tdx": "tdx-v4-dcapqvl-sample"}
TEES = tuple(VECTOR_IDS)


@dataclass(frozen=True)
class Vector:
    tee: str
    vector_id: str
    folder: Path
    evidence: bytes
    collateral: dict[str, bytes]
    verify_at: str  # RFC 3339, from MANIFEST.json
    references: tuple[tuple[str, str], ...]  # (kind, lowercase hex) the default policy requires

    @property
    def at(self) -> dt.datetime:
        from verifier.clock import parse_rfc3339

        return parse_rfc3339(self.verify_at)


def vectors_dir() -> Path:
    """VERIFIER_VECTORS, else ../shared/vectors beside the repository."""
    return Path(os.environ.get("VERIFIER_VECTORS", ROOT.parent / "shared" / "vectors"))


def _claim_value(kind: str, facts: dict[str, Any]) -> str:
    """The manifest's fact for a reference-value kind: nitro.pcrN -> facts.pcrs[N], else facts[<claim>]."""
    claim = kind.split(".", 1)[1]
    if claim.startswith("pcr"):
        return str(facts["pcrs"][claim[3:]]).lower()
    return str(facts[claim]).lower()


def load_vector(tee: str, root: Path | None = None) -> Vector:
    """The vector of `tee` with everything in its folder but the evidence as request collateral (none for Nitro)."""
    from verifier.reference_values.kinds import MEASUREMENT_KINDS

    root = root or vectors_dir()
    manifest = json.loads((root / "MANIFEST.json").read_text())
    entry = next(v for v in manifest["vectors"] if v["id"] == VECTOR_IDS[tee])
    folder = root / entry["dir"]
    collateral = (
        {} if tee == "nitro" else {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "evidence.bin"}
    )
    references = tuple((kind, _claim_value(kind, entry["facts"])) for kind in MEASUREMENT_KINDS[tee])
    return Vector(
        tee, entry["id"], folder, (folder / "evidence.bin").read_bytes(), collateral, entry["verify_at"], references
    )


def register_references(store: Any, vector: Vector, label: str = "bench") -> None:
    """Approve the vector's measurements (one workload, `label`) valid from its verify_at, so it affirms."""
    for kind, value in vector.references:
        store.add(kind, bytes.fromhex(value), label, now=vector.at)


# The response view the requests ask for (`--view`, `AppraiseRequest.view`): "token" by default, the answer a relying
# party that uses the token needs and what the floor returns (status, ids, token; no extracted claims); "full" adds the
# claims twice (as a Struct and as JSON). The floor ignores the field.
VIEWS = {"token": "RESPONSE_VIEW_TOKEN", "full": "RESPONSE_VIEW_FULL"}
DEFAULT_VIEW = "token"


def request_bytes(vector: Vector, *, with_collateral: bool = True, view: str | None = None) -> bytes:
    """The serialized verifier.v1 AppraiseRequest for the vector (no nonce: no challenge is consumed), asking for
    `view` (default `DEFAULT_VIEW`)."""
    from verifier.appraisal.registry import get_scheme
    from verifier.v1 import verifier_pb2 as pb

    collateral = vector.collateral if with_collateral else {}
    message = pb.AppraiseRequest(
        kind=pb.EvidenceKind.Value(get_scheme(vector.tee).proto_kind),
        evidence=vector.evidence,
        collateral=[pb.CollateralFile(name=n, content=c) for n, c in sorted(collateral.items())],
        view=pb.ResponseView.Value(VIEWS[view or DEFAULT_VIEW]),
    )
    return message.SerializeToString()


class VectorPcs:
    """Serves a TDX vector folder's Intel collateral as Intel PCS would (no network), for the warm/cold rates."""

    FILES = {
        "intel.tcb_info": ("tcb_info.json", "tcb_info_issuer_chain.pem"),
        "intel.qe_identity": ("qe_identity.json", "qe_identity_issuer_chain.pem"),
        "intel.pck_crl": ("pck_crl.der", "pck_crl_issuer_chain.pem"),
        "intel.root_ca_crl": ("root_ca_crl.der", None),
    }

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def fetch(self, key: Any, *, at: dt.datetime) -> Any:
        from verifier.collateral.base import CollateralItem
        from verifier.collateral.pcs_items import envelope

        body, chain = self.FILES[key.kind]
        data = envelope(key.kind, (self.folder / body).read_bytes(), (self.folder / chain).read_text() if chain else "")
        return CollateralItem(key, data, at, at + dt.timedelta(days=1), "bench")
