"""TDX collateral: exact signed-member bytes, files vs dcap-qvl collateral.json, verification windows and CRLs."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import manifest_vectors
from tests.fakes.intel_pki import FakeIntelPki
from verifier.collateral.base import CollateralUnavailableError
from verifier.errors import EvidenceError
from verifier.tee.tdx.collateral import verify_collateral
from verifier.tee.tdx.collateral_documents import TdxCollateral, collateral_from_files, parse_signed_json
from verifier.tee.tdx.pck import pck_chain
from verifier.tee.tdx.quote import parse_quote
from verifier.trust.anchors import TrustAnchors

WITH_COLLATERAL = [v for v in manifest_vectors("tdx") if v["what"]["collateral"] != "none"]
SECOND = dt.timedelta(seconds=1)


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _files(vectors_dir: Path, vector: dict[str, Any]) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (vectors_dir / vector["dir"]).iterdir()}


def _issuer(files: dict[str, bytes]) -> Any:
    return pck_chain(parse_quote(files["evidence.bin"]).pck_chain_pem)[0].issuer


@pytest.fixture(scope="module")
def anchors(trust_anchors_dir: Path) -> TrustAnchors:
    return TrustAnchors.from_directory(trust_anchors_dir)


@pytest.mark.parametrize("vector", WITH_COLLATERAL, ids=[v["id"] for v in WITH_COLLATERAL])
def test_files_and_collateral_json_agree(vectors_dir: Path, vector: dict[str, Any]) -> None:
    files = _files(vectors_dir, vector)
    alone = collateral_from_files({"collateral.json": files["collateral.json"]})
    plain = collateral_from_files({k: v for k, v in files.items() if k != "collateral.json"})
    assert alone == plain == collateral_from_files(files)
    assert alone.complete
    assert plain.tcb_info is not None and plain.tcb_info.raw in files["tcb_info.json"]
    assert plain.tcb_info.data["id"] == "TDX"


@pytest.mark.parametrize("vector", WITH_COLLATERAL, ids=[v["id"] for v in WITH_COLLATERAL])
def test_verify_inside_and_outside_the_window(vectors_dir: Path, vector: dict[str, Any], anchors: TrustAnchors) -> None:
    files = _files(vectors_dir, vector)
    col, issuer = collateral_from_files(files), _issuer(files)
    start, end = (_time(t) for t in vector["what"]["collateral_validity_window"])
    checked = verify_collateral(col, anchors, _time(vector["verify_at"]), pck_issuer=issuer)
    assert checked.next_update == end
    assert checked.tcb_info.fmspc.hex() == vector["facts"]["fmspc"]
    verify_collateral(col, anchors, start, pck_issuer=issuer)
    for at in (end + SECOND, start - SECOND):
        with pytest.raises(EvidenceError) as info:
            verify_collateral(col, anchors, at, pck_issuer=issuer)
        assert info.value.code == "TDX_COLLATERAL_EXPIRED"
        assert info.value.actual == at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_flipped_byte_in_tcb_info_breaks_the_signature(vectors_dir: Path, anchors: TrustAnchors) -> None:
    vector = next(v for v in WITH_COLLATERAL if v["id"] == "tdx-v4-dcapqvl-sample")
    files = _files(vectors_dir, vector)
    del files["collateral.json"]
    assert files["tcb_info.json"].count(b'"tcbEvaluationDataNumber":17') == 1
    files["tcb_info.json"] = files["tcb_info.json"].replace(
        b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":18'
    )
    with pytest.raises(EvidenceError) as info:
        verify_collateral(collateral_from_files(files), anchors, _time(vector["verify_at"]), pck_issuer=_issuer(files))
    assert info.value.code == "TDX_COLLATERAL_SIGNATURE_INVALID"


def test_raw_is_the_served_span_never_reserialized() -> None:
    doc = b' {\n  "tcbInfo" : {"b": 1,  "a": [ 1, 2 ]} ,\n "signature":"' + b"ab" * 64 + b'"\n} \n'
    signed = parse_signed_json(doc, "tcbInfo")
    assert signed.raw == b'{"b": 1,  "a": [ 1, 2 ]}'
    assert signed.data == {"b": 1, "a": [1, 2]} and signed.signature == b"\xab" * 64


@pytest.mark.parametrize("doc", [
    b'{"tcbInfo":{},"tcbInfo":{},"signature":"' + b"00" * 64 + b'"}',
    b'{"tcbInfo":{"a":1,"a":2},"signature":"' + b"00" * 64 + b'"}',
    b'{"tcbInfo":{"a":NaN},"signature":"' + b"00" * 64 + b'"}',
    b'{"tcbInfo":{},"signature":"' + b"00" * 63 + b'"}',
    b'{"tcbInfo":{},"signature":"' + b"00" * 64 + b'"} x',
    b'{"tcbInfo":[],"signature":"' + b"00" * 64 + b'"}',
    b'{"tcbInfo":{}}', b"[]", b"", b"\xff",
])  # fmt: skip
def test_malformed_signed_json(doc: bytes) -> None:
    with pytest.raises(EvidenceError) as info:
        parse_signed_json(doc, "tcbInfo")
    assert info.value.code == "TDX_COLLATERAL_MALFORMED"


def test_malformed_collateral_json() -> None:
    with pytest.raises(EvidenceError) as info:
        collateral_from_files({"collateral.json": json.dumps({"tcb_info": 5}).encode()})
    assert info.value.code == "TDX_COLLATERAL_MALFORMED"


# --- fake PKI: the failure codes -------------------------------------------------------------------------------


def _check(pki: FakeIntelPki, files: dict[str, bytes], **kw: Any) -> None:
    verify_collateral(
        collateral_from_files(files),
        kw.get("anchors", pki.anchors()),
        pki.now,
        pck_issuer=kw.get("issuer", pki.pck.issuer),
    )


def _code(pki: FakeIntelPki, files: dict[str, bytes], **kw: Any) -> str:
    with pytest.raises(EvidenceError) as info:
        _check(pki, files, **kw)
    return info.value.code


def test_fake_collateral_verifies_and_missing_items_are_unavailable() -> None:
    pki = FakeIntelPki()
    _check(pki, pki.collateral_files())
    files = pki.collateral_files()
    del files["pck_crl.der"]
    assert not collateral_from_files(files).complete
    with pytest.raises(CollateralUnavailableError) as info:
        _check(pki, files)
    assert info.value.code == "COLLATERAL_MISSING" and "pck_crl.der" in info.value.message
    with pytest.raises(CollateralUnavailableError):
        verify_collateral(
            TdxCollateral(None, (), None, (), None, (), None), pki.anchors(), pki.now, pck_issuer=pki.pck.issuer
        )


def test_fake_failure_codes() -> None:
    pki = FakeIntelPki()
    other = ec.generate_private_key(ec.SECP256R1())
    assert _code(pki, pki.collateral_files(tcb_info=pki.tcb_info(id="SGX"))) == "TDX_COLLATERAL_UNSUPPORTED"
    assert _code(pki, pki.collateral_files(qe_identity=pki.qe_identity(id="QE"))) == "TDX_COLLATERAL_UNSUPPORTED"
    assert _code(pki, pki.collateral_files(qe_identity=pki.qe_identity(version=3))) == "TDX_COLLATERAL_UNSUPPORTED"
    assert _code(pki, pki.collateral_files(tcb_info=pki.tcb_info(tcbLevels="x"))) == "TDX_COLLATERAL_MALFORMED"
    signed_by_other = {"qe_identity.json": pki.sign_json("enclaveIdentity", pki.qe_identity(), other)}
    assert _code(pki, pki.collateral_files(**signed_by_other)) == "TDX_COLLATERAL_SIGNATURE_INVALID"
    bad_crl = {"pck_crl.der": pki.pck_crl(signer_key=other)}
    assert _code(pki, pki.collateral_files(**bad_crl)) == "CRL_SIGNATURE_INVALID"
    bad_root_crl = {"root_ca_crl.der": pki.root_ca_crl(signer_key=other)}
    assert _code(pki, pki.collateral_files(**bad_root_crl)) == "CRL_SIGNATURE_INVALID"
    swapped = {"pck_crl.der": pki.root_ca_crl()}
    assert _code(pki, pki.collateral_files(**swapped)) == "CRL_ISSUER_MISMATCH"
    assert _code(pki, pki.collateral_files(), issuer=pki.root.subject) == "CRL_ISSUER_MISMATCH"
    stale = {"pck_crl.der": pki.pck_crl(this_update=pki.now - dt.timedelta(days=40), next_update=pki.now - SECOND)}
    assert _code(pki, pki.collateral_files(**stale)) == "TDX_COLLATERAL_EXPIRED"
    assert _code(pki, pki.collateral_files(), anchors=TrustAnchors(pins={})) == "CHAIN_ROOT_UNTRUSTED"
    foreign = pki.foreign()
    assert _code(pki, foreign.collateral_files()) == "CHAIN_ROOT_UNTRUSTED"


def test_issuer_chains_are_loaded_by_the_shared_certificate_loader() -> None:
    """A certificate whose subject does not decode (a 21-byte BMPString) fails where it is loaded: CERT_MALFORMED
    (verifier/trust/certs.py), for the request's chains as for the source's."""
    pki = FakeIntelPki()
    der = pki.tcb_signing.public_bytes(Encoding.DER)
    needle = b"\x0c\x15Intel SGX TCB Signing"
    assert der.count(needle) == 1
    bad = base64.encodebytes(der.replace(needle, b"\x1e\x15Intel SGX TCB Signing"))
    pem = b"-----BEGIN CERTIFICATE-----\n" + bad + b"-----END CERTIFICATE-----\n" + pki.root.public_bytes(Encoding.PEM)
    for name in ("tcb_info_issuer_chain.pem", "qe_identity_issuer_chain.pem", "pck_crl_issuer_chain.pem"):
        with pytest.raises(EvidenceError) as info:
            collateral_from_files(pki.collateral_files(**{name: pem}))
        assert info.value.code == "CERT_MALFORMED" and name in info.value.message
