"""Issue 16 (TDX and the collateral windows): checks a mutation run showed no test protected.

- The PCK CA of the PCK CRL issuer chain must be signed by the pinned Intel root and be a CA: a foreign PCK CA with
  the same name (or a root-signed non-CA with that name) and its own empty CRL would otherwise un-revoke a revoked
  PCK, since the request's newer CRL decides (freshness.py).
- One validity rule for TDX collateral (TCB info, QE identity, PCK CRL, root CA CRL) and the AMD CRL:
  thisUpdate <= at < nextUpdate; nextUpdate itself is already outside the window (as in the collateral cache).
- Every TUD bit (TD_ATTRIBUTES bits 7:0; DEBUG is bit 0, bits 7:1 reserved for TUD features, "if any of the bits
  in this group are set to 1, the TD is untrusted") makes a debug TD.
- The dcap-qvl sample vector with byte 111 of pck_crl_issuer_chain.pem set to 0x2f (a PCK CA issuer name that does
  not decode) is a typed CERT_MALFORMED and a signed contraindicated result, never an uncaught ValueError.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.intel_pki import FakeIntelPki
from verifier.appraisal.model import Tier, combine
from verifier.appraisal.policy import Policy
from verifier.appraisal.tdx import appraise
from verifier.clock import FixedClock, parse_rfc3339
from verifier.collateral.base import CollateralSource, OfflineSource
from verifier.errors import EvidenceError
from verifier.reference_values.model import ReferenceValue
from verifier.results.signer import ResultSigner
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.sevsnp.crl import verify_crl
from verifier.tee.sevsnp.tcb import Product
from verifier.tee.tdx.collateral import verify_collateral
from verifier.tee.tdx.collateral_checks import check_pck_crl
from verifier.tee.tdx.collateral_documents import collateral_from_files
from verifier.tee.tdx.evidence import TdxVerifier
from verifier.trust.anchors import TrustAnchors

MR_TD = b"\x42" * 48
SEPT_VE_DISABLE = 1 << 28
DAY, HOUR, MICROSECOND = dt.timedelta(days=1), dt.timedelta(hours=1), dt.timedelta(microseconds=1)
VECTOR = "tdx-v4-dcapqvl-sample"


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _attributes(value: int) -> bytes:
    return value.to_bytes(8, "little")


def _anchors(pki: FakeIntelPki) -> TrustAnchors:
    """The pinned root, also as an anchor certificate (so a chain may end with a foreign root of the same name)."""
    return TrustAnchors(pins=pki.pins, certificates=[pki.root])


def _verify(
    pki: FakeIntelPki, evidence: bytes, request: dict[str, bytes], source: CollateralSource | None = None
) -> VerifiedEvidence:
    ctx = VerifyContext(at=pki.now, anchors=_anchors(pki), collateral=request, source=source or OfflineSource())
    return TdxVerifier().verify(evidence, ctx)


def _appraise(pki: FakeIntelPki, verified: VerifiedEvidence) -> tuple[Tier, list[str]]:
    assert verified.failure is None, verified.failure
    refs = [ReferenceValue("tdx.mr_td", "tdx.mr_td", MR_TD, "td", pki.now - DAY)]
    baseline, findings, _ = appraise(verified, Policy(), refs, pki.now)
    return combine(baseline, findings).status, [f.code for f in findings]


# --- the PCK CA of the PCK CRL issuer chain -----------------------------------------------------------------------


def _not_a_ca(pki: FakeIntelPki, constraints: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Issued by the pinned root, subject = the PCK CA's, keyCertSign and cRLSign, but not a CA: basicConstraints
    cA=false (`constraints`) or no basicConstraints at all."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(pki.pck_ca.subject)
        .issuer_name(pki.root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.now - 30 * DAY)
        .not_valid_after(pki.now + 365 * DAY)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    )
    if constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return builder.sign(pki.root_key, hashes.SHA256()), key


def _forged_pck_crl(pki: FakeIntelPki, forgery: str) -> dict[str, bytes]:
    """An empty PCK CRL numbered after the genuine one, with an issuer chain naming a PCK CA that is not Intel's."""
    if forgery.startswith("foreign-pck-ca"):
        foreign = pki.foreign()  # same names, other keys: its PCK CA is not signed by the pinned root
        root = pki.root if forgery == "foreign-pck-ca" else foreign.root
        return {"pck_crl.der": foreign.pck_crl([], number=2), "pck_crl_issuer_chain.pem": _pem(foreign.pck_ca, root)}
    cert, key = _not_a_ca(pki, constraints=forgery == "root-signed-ca-false")
    return {"pck_crl.der": pki.pck_crl([], number=2, signer_key=key), "pck_crl_issuer_chain.pem": _pem(cert, pki.root)}


FORGED_CA = {
    "foreign-pck-ca": ("CHAIN_SIGNATURE_INVALID", "does not verify"),
    "foreign-pck-ca-under-foreign-root": ("CHAIN_SIGNATURE_INVALID", "does not verify"),
    "root-signed-ca-false": ("CHAIN_CONSTRAINTS", "is not a CA"),
    "root-signed-no-basic-constraints": ("CHAIN_CONSTRAINTS", "is not a CA"),
}


@pytest.mark.parametrize("forgery", list(FORGED_CA))
def test_a_pck_crl_issuer_that_is_not_an_intel_pck_ca_is_refused(pki: FakeIntelPki, forgery: str) -> None:
    col = collateral_from_files(pki.collateral_files(**_forged_pck_crl(pki, forgery)))
    with pytest.raises(EvidenceError) as info:
        check_pck_crl(col, _anchors(pki), pki.now, "request", pck_issuer=pki.pck.issuer)
    code, message = FORGED_CA[forgery]
    assert info.value.code == code and message in info.value.message, info.value


@pytest.mark.parametrize("forgery", list(FORGED_CA))
def test_a_forged_empty_pck_crl_cannot_unrevoke_a_revoked_pck(pki: FakeIntelPki, forgery: str) -> None:
    evidence = pki.quote(mr_td=MR_TD, td_attributes=_attributes(SEPT_VE_DISABLE))
    revoking = pki.collateral_files(**{"pck_crl.der": pki.pck_crl([pki.pck.serial_number], number=1)})
    assert _verify(pki, evidence, revoking).failure.code == "TDX_PCK_REVOKED"  # type: ignore[union-attr]
    verified = _verify(pki, evidence, pki.collateral_files(**_forged_pck_crl(pki, forgery)), pki.source(revoking))
    assert verified.failure is not None and verified.failure.code == FORGED_CA[forgery][0], verified.failure
    assert verified.claims.get("tcb_status") in (None, "unknown")


# --- one window rule: thisUpdate <= at < nextUpdate ---------------------------------------------------------------


def _time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ending(pki: FakeIntelPki, item: str, end: dt.datetime) -> dict[str, bytes]:
    """Genuine collateral where only `item` has nextUpdate `end` (the others run 29 days)."""
    dates: dict[str, Any] = {"issueDate": _time(pki.now - DAY), "nextUpdate": _time(end)}
    if item == "TCB info":
        return pki.collateral_files(tcb_info=pki.tcb_info(**dates))
    if item == "QE identity":
        return pki.collateral_files(qe_identity=pki.qe_identity(**dates))
    if item == "PCK CRL":
        return pki.collateral_files(**{"pck_crl.der": pki.pck_crl(next_update=end)})
    return pki.collateral_files(**{"root_ca_crl.der": pki.root_ca_crl(next_update=end)})


@pytest.mark.parametrize("item", ["TCB info", "QE identity", "PCK CRL", "root CA CRL"])
def test_tdx_collateral_is_valid_until_just_before_next_update(pki: FakeIntelPki, item: str) -> None:
    end = pki.now + HOUR
    col = collateral_from_files(_ending(pki, item, end))
    verified = verify_collateral(col, pki.anchors(), end - MICROSECOND, pck_issuer=pki.pck.issuer)
    assert verified.next_update == end
    with pytest.raises(EvidenceError) as info:
        verify_collateral(col, pki.anchors(), end, pck_issuer=pki.pck.issuer)
    assert info.value.code == "TDX_COLLATERAL_EXPIRED" and info.value.message.startswith(item), info.value
    assert info.value.expected.endswith(f"<= at < {_time(end)}")


def test_the_amd_crl_is_valid_until_just_before_next_update() -> None:
    amd = FakeAmdPki(Product.GENOA)
    end = amd.now + HOUR
    der = amd.crl(this_update=amd.now - DAY, next_update=end)
    verify_crl(der, amd.ark, amd.now - DAY)  # thisUpdate itself is inside
    verify_crl(der, amd.ark, end - MICROSECOND)
    with pytest.raises(EvidenceError) as info:
        verify_crl(der, amd.ark, end)
    assert info.value.code == "CRL_EXPIRED" and _time(end) in info.value.expected


# --- TD_ATTRIBUTES.TUD ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bit", range(8))
def test_every_tud_bit_makes_a_debug_td(pki: FakeIntelPki, bit: int) -> None:
    evidence = pki.quote(mr_td=MR_TD, td_attributes=_attributes(1 << bit | SEPT_VE_DISABLE))
    verified = _verify(pki, evidence, pki.collateral_files())
    assert verified.claims["td_attributes_decoded"]["tud"] == 1 << bit
    assert verified.parsed is not None and verified.parsed.body.td_attributes == _attributes(1 << bit | SEPT_VE_DISABLE)
    status, codes = _appraise(pki, verified)
    assert (status, codes) == (Tier.CONTRAINDICATED, ["TDX_DEBUG_TD"])


@pytest.mark.parametrize("attributes", [0, 1 << 8, 1 << 27 | 1 << 29 | 1 << 63], ids=["none", "sec-bit-8", "others"])
def test_td_attributes_outside_tud_are_not_debug(pki: FakeIntelPki, attributes: int) -> None:
    evidence = pki.quote(mr_td=MR_TD, td_attributes=_attributes(attributes | SEPT_VE_DISABLE))
    status, codes = _appraise(pki, _verify(pki, evidence, pki.collateral_files()))
    assert "TDX_DEBUG_TD" not in codes and status is Tier.AFFIRMING, codes


# --- the dcap-qvl sample with an undecodable PCK CA issuer name in pck_crl_issuer_chain.pem ------------------------


def _mutated_vector(vectors_dir: Path) -> tuple[dict[str, Any], bytes, dict[str, bytes]]:
    manifest = json.loads((vectors_dir / "MANIFEST.json").read_text())
    entry = next(v for v in manifest["vectors"] if v["id"] == VECTOR)
    folder = vectors_dir / entry["dir"]
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    evidence = files.pop("evidence.bin")
    chain = bytearray(files["pck_crl_issuer_chain.pem"])
    assert chain[111] != 0x2F
    chain[111] = 0x2F
    return entry, evidence, files | {"pck_crl_issuer_chain.pem": bytes(chain)}


@pytest.fixture
def mutated(vectors_dir: Path) -> Iterator[tuple[dict[str, Any], bytes, dict[str, bytes]]]:
    yield _mutated_vector(vectors_dir)


def test_undecodable_pck_crl_issuer_chain_is_cert_malformed(
    mutated: tuple[dict[str, Any], bytes, dict[str, bytes]], trust_anchors_dir: Path
) -> None:
    entry, evidence, files = mutated
    with pytest.raises(EvidenceError) as info:
        collateral_from_files(files)
    assert info.value.code == "CERT_MALFORMED" and "pck_crl_issuer_chain.pem" in info.value.message
    at = parse_rfc3339(entry["verify_at"])
    ctx = VerifyContext(at=at, anchors=TrustAnchors.from_directory(trust_anchors_dir), collateral=files)
    verified = TdxVerifier().verify(evidence, ctx)
    assert verified.failure is not None and verified.failure.code == "CERT_MALFORMED"


def test_undecodable_pck_crl_issuer_chain_is_a_signed_contraindicated_result(
    mutated: tuple[dict[str, Any], bytes, dict[str, bytes]], tmp_path: Path
) -> None:
    from verifier.bootstrap import build
    from verifier.service import AppraisalRequest
    from verifier.settings import Settings
    from verifier.storage.migrate import upgrade

    entry, evidence, files = mutated
    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade(url)
    at = parse_rfc3339(entry["verify_at"])
    components = build(Settings(database_url=url, development=True, offline=True), clock=FixedClock(at))
    try:
        result = components.service.appraise(AppraisalRequest(tee="tdx", evidence=evidence, collateral=files))
        jwks = components.service.jwks()
    finally:
        components.close()
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert [f.code for f in result.appraisal.findings] == ["CERT_MALFORMED"]
    claims = ResultSigner.verify(result.token, jwks)
    assert claims["ear_status"] == claims["submods"]["tdx"]["ear_status"] == "contraindicated"
