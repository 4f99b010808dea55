"""High-s ECDSA signatures are accepted (verifier/trust/ecdsa.py says why); these tests pin both halves of that.

1. Genuine hardware emits high-s: the count over the shared vectors is asserted (it is quoted in the docstring).
2. A malleated copy (r, n - s) of every genuine signature verifies exactly like the original at the TEE layer.
3. Through the service, a malleated copy of fresh evidence presented with its already-consumed nonce is refused
   (CHALLENGE_REPLAYED), and the evidence SHA-256 recorded is that of the bytes received.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.conftest import manifest_vectors
from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import Harness, make_harness
from verifier.appraisal.model import Tier
from verifier.errors import EvidenceError
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database
from verifier.tee.nitro.parse import parse as parse_nitro
from verifier.tee.nitro.verify import verify as verify_nitro
from verifier.tee.sevsnp.abi import parse_report
from verifier.tee.sevsnp.certs import SnpCertificates, load_certificate
from verifier.tee.sevsnp.tcb import Product
from verifier.tee.sevsnp.verify import verify_report
from verifier.tee.tdx.quote import parse_quote
from verifier.tee.tdx.verify import verify_quote
from verifier.trust.anchors import TrustAnchors
from verifier.trust.ecdsa import P256_ORDER, P384_ORDER, complement, curve_order, is_high_s, verify_rs

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
NOT_GENUINE = ("-tampered", "-sigtampered", "-truncated")
SNP_CERT_FILES = {"ark.pem": "ark", "ask.pem": "ask", "asvk.pem": "asvk", "vcek.der": "vcek", "vlek.der": "vlek"}


def _genuine(tee: str) -> list[dict[str, Any]]:
    return [v for v in manifest_vectors(tee) if not v["id"].endswith(NOT_GENUINE)]


def _at(vector: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))


def _evidence(vectors_dir: Path, vector: dict[str, Any]) -> bytes:
    return (vectors_dir / vector["dir"] / "evidence.bin").read_bytes()


def _swap(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1 and len(old) == len(new)
    return data.replace(old, new)


def _malleate_be(raw: bytes, order: int) -> bytes:
    """Raw big-endian r||s -> r||(n - s)."""
    half = len(raw) // 2
    s = int.from_bytes(raw[half:], "big")
    return raw[:half] + complement(s, order).to_bytes(half, "big")


def _snp_s(report_s: bytes) -> int:
    return int.from_bytes(report_s, "little")


# ---- the helper ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "order", "algorithm"),
    [(ec.SECP256R1(), P256_ORDER, hashes.SHA256()), (ec.SECP384R1(), P384_ORDER, hashes.SHA384())],
)
def test_both_halves_verify_and_out_of_range_never_does(
    curve: ec.EllipticCurve, order: int, algorithm: hashes.HashAlgorithm
) -> None:
    key = ec.generate_private_key(curve)
    assert curve_order(curve) == order
    r, s = decode_dss_signature(key.sign(b"message", ec.ECDSA(algorithm)))
    public = key.public_key()
    assert verify_rs(public, r, s, b"message", algorithm)
    assert verify_rs(public, r, complement(s, order), b"message", algorithm)  # the malleated twin
    assert is_high_s(s, order) != is_high_s(complement(s, order), order)
    assert not verify_rs(public, r, s, b"other", algorithm)
    for bad_r, bad_s in ((0, s), (r, 0), (r, order), (order + r, s), (r, s + order), (r, 1 << 575)):
        assert not verify_rs(public, bad_r, bad_s, b"message", algorithm)


def test_high_s_boundaries() -> None:
    n = P384_ORDER
    assert [is_high_s(v, n) for v in (0, 1, n // 2, n // 2 + 1, n - 1, n)] == [False, False, False, True, True, False]
    assert complement(complement(12345, n), n) == 12345
    with pytest.raises(ValueError):
        curve_order(ec.SECP521R1())


# ---- 1. genuine hardware emits high-s -------------------------------------------------------------------------


def _genuine_signatures(vectors_dir: Path) -> list[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []
    for vector in _genuine("snp"):
        report = parse_report(_evidence(vectors_dir, vector))
        found.append((vector["id"], is_high_s(_snp_s(report.signature_s), P384_ORDER)))
    for vector in _genuine("tdx"):
        quote = parse_quote(_evidence(vectors_dir, vector))
        for what, raw in (("quote", quote.signature), ("qe-report", quote.qe_report_signature)):
            found.append((f"{vector['id']}/{what}", is_high_s(int.from_bytes(raw[32:], "big"), P256_ORDER)))
    for vector in _genuine("nitro"):
        signature = parse_nitro(_evidence(vectors_dir, vector)).cose.signature
        found.append((vector["id"], is_high_s(int.from_bytes(signature[48:], "big"), P384_ORDER)))
    return found


def test_genuine_hardware_signatures_are_high_s_about_half_the_time(vectors_dir: Path) -> None:
    """Rejecting high-s would refuse genuine AMD, Intel and AWS evidence (numbers quoted in trust/ecdsa.py)."""
    found = _genuine_signatures(vectors_dir)
    high = {name for name, is_high in found if is_high}
    assert (len(high), len(found)) == (10, 20), sorted(high)
    for prefix in ("snp-", "tdx-", "nitro-"):
        assert any(name.startswith(prefix) for name in high), prefix


# ---- 2. a malleated copy verifies exactly like the original at the TEE layer ----------------------------------


@pytest.mark.parametrize("vector", _genuine("snp"), ids=[v["id"] for v in _genuine("snp")])
def test_snp_malleated_report_verifies_like_the_original(vectors_dir: Path, vector: dict[str, Any]) -> None:
    directory = vectors_dir / vector["dir"]
    raw = _evidence(vectors_dir, vector)
    report = parse_report(raw)
    s = _snp_s(report.signature_s)
    malleated_s = complement(s, P384_ORDER).to_bytes(len(report.signature_s), "little")
    twin = parse_report(_swap(raw, report.signature_r + report.signature_s, report.signature_r + malleated_s))
    assert is_high_s(_snp_s(twin.signature_s), P384_ORDER) != is_high_s(s, P384_ORDER)
    present = {k: directory / f for f, k in SNP_CERT_FILES.items() if (directory / f).exists()}
    certs = SnpCertificates(**{k: load_certificate(p.read_bytes(), p.name) for k, p in present.items()})
    product = Product(vector["what"]["processor_family"])
    original = verify_report(report, certs, TrustAnchors(), _at(vector), product=product)
    assert verify_report(twin, certs, TrustAnchors(), _at(vector), product=product) == original


def test_snp_sigtampered_vector_stays_invalid_when_malleated(vectors_dir: Path) -> None:
    vector = next(v for v in manifest_vectors("snp") if v["id"].endswith("-sigtampered"))
    directory = vectors_dir / vector["dir"]
    report = parse_report(_evidence(vectors_dir, vector))
    malleated_s = complement(_snp_s(report.signature_s), P384_ORDER).to_bytes(72, "little")
    twin = parse_report(_swap(_evidence(vectors_dir, vector), report.signature_s, malleated_s))
    certs = SnpCertificates(
        **{
            k: load_certificate((directory / f).read_bytes(), f)
            for f, k in SNP_CERT_FILES.items()
            if (directory / f).exists()
        }
    )
    with pytest.raises(EvidenceError) as err:
        verify_report(twin, certs, TrustAnchors(), _at(vector))
    assert err.value.code == "SNP_SIGNATURE_INVALID"


def _tdx_crls(directory: Path) -> dict[str, x509.CertificateRevocationList | None]:
    return {
        name: x509.load_der_x509_crl((directory / f"{name}.der").read_bytes())
        if (directory / f"{name}.der").exists()
        else None
        for name in ("pck_crl", "root_ca_crl")
    }


@pytest.mark.parametrize("vector", _genuine("tdx"), ids=[v["id"] for v in _genuine("tdx")])
def test_tdx_malleated_signatures_verify_like_the_original(vectors_dir: Path, vector: dict[str, Any]) -> None:
    raw = _evidence(vectors_dir, vector)
    quote = parse_quote(raw)
    crls = _tdx_crls(vectors_dir / vector["dir"])
    original = verify_quote(quote, TrustAnchors(), _at(vector), **crls)
    quote_twin = _swap(raw, quote.signature, _malleate_be(quote.signature, P256_ORDER))
    both_twin = _swap(quote_twin, quote.qe_report_signature, _malleate_be(quote.qe_report_signature, P256_ORDER))
    for data in (quote_twin, both_twin):
        twin = parse_quote(data)
        assert twin.signature != quote.signature
        assert verify_quote(twin, TrustAnchors(), _at(vector), **crls) == original
    assert parse_quote(both_twin).qe_report_signature != quote.qe_report_signature


@pytest.mark.parametrize("vector", _genuine("nitro"), ids=[v["id"] for v in _genuine("nitro")])
def test_nitro_malleated_document_verifies_like_the_original(vectors_dir: Path, vector: dict[str, Any]) -> None:
    raw = _evidence(vectors_dir, vector)
    evidence = parse_nitro(raw)
    twin = parse_nitro(_swap(raw, evidence.cose.signature, _malleate_be(evidence.cose.signature, P384_ORDER)))
    assert twin.document == evidence.document
    assert verify_nitro(twin, TrustAnchors(), _at(vector)) == verify_nitro(evidence, TrustAnchors(), _at(vector))


def test_fake_nitro_document_verifies_in_both_halves() -> None:
    pki = FakeAwsPki()
    signature = parse_nitro(pki.mint(nonce=b"n")).cose.signature
    twin = _malleate_be(signature, P384_ORDER)
    for raw in (signature, twin):
        verify_nitro(parse_nitro(pki.mint(nonce=b"n", signature=raw)), pki.anchors(), pki.now)
    assert is_high_s(int.from_bytes(signature[48:], "big"), P384_ORDER) != is_high_s(
        int.from_bytes(twin[48:], "big"), P384_ORDER
    )


# ---- 3. through the service: a malleated copy cannot reuse a consumed challenge ---------------------------------


@pytest.fixture
def h(db: Database) -> Harness:
    return make_harness(db)


def _codes(result: Any) -> list[str]:
    return [f.code for f in result.appraisal.findings]


def _fresh_pair(h: Harness) -> tuple[bytes, bytes, bytes]:
    challenge = h.service.create_challenge()
    evidence = h.pki.mint(nonce=challenge.nonce)
    signature = parse_nitro(evidence).cose.signature
    return challenge.nonce, evidence, _swap(evidence, signature, _malleate_be(signature, P384_ORDER))


@pytest.mark.parametrize("first", ["original", "malleated"])
def test_malleated_copy_with_a_consumed_nonce_is_replayed(h: Harness, first: str) -> None:
    h.approve()
    nonce, original, malleated = _fresh_pair(h)
    presented, then = (original, malleated) if first == "original" else (malleated, original)
    accepted = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=presented, nonce=nonce), require_challenge=True
    )
    assert accepted.appraisal.status is Tier.AFFIRMING, _codes(accepted)
    replay = h.service.appraise(AppraisalRequest(tee="nitro", evidence=then, nonce=nonce), require_challenge=True)
    assert replay.appraisal.status is Tier.CONTRAINDICATED
    assert _codes(replay) == ["CHALLENGE_REPLAYED"]
    recorded = [row["evidence_sha256"] for row in h.appraisals.recent(2)]
    assert sorted(recorded) == sorted(hashlib.sha256(e).hexdigest() for e in (presented, then))


def test_malleated_copy_yields_the_same_claims(h: Harness) -> None:
    """Nothing the verifier reports depends on which of the two signatures arrived."""
    h.approve()
    _, original, malleated = _fresh_pair(h)
    results = [h.service.appraise(AppraisalRequest(tee="nitro", evidence=e)) for e in (original, malleated)]
    assert [r.appraisal.status for r in results] == [Tier.AFFIRMING, Tier.AFFIRMING]
    assert results[0].appraisal.claims == results[1].appraisal.claims
