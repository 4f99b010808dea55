"""Issue 16, surviving mutants of the TDX document parsing and PCK code (verifier/tee/tdx/collateral_documents.py,
evidence.py, pck.py, pcs.py): each test pins a check a mutant deleted or weakened with the suite still green.
Size limits are tested exactly at the bound, error paths by their code (and, where the code alone does not
tell the paths apart, by the expected/actual that reach the signed result)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, cast

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from tests.fakes.intel_pki import FakeIntelPki
from tests.unit.tee.tdx.test_tdx_pck import cert_with, extension, octets, pair, seq, tcb
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.pcs_items import (
    KIND_PCK_CRL,
    KIND_QE_IDENTITY,
    KIND_TCB_INFO,
    envelope,
    next_update,
    open_envelope,
    tcb_info_key,
)
from verifier.errors import EvidenceError
from verifier.tee.base import VerifyContext
from verifier.tee.tdx.collateral_documents import MAX_DOC_BYTES, _Memo, collateral_from_files, parse_signed_json
from verifier.tee.tdx.evidence import TdxVerifier
from verifier.tee.tdx.pck import SGX_EXTENSION_OID, pck_info

SIG = "ab" * 64
MALFORMED = "TDX_COLLATERAL_MALFORMED"


def _doc(member: str = "tcbInfo", body: str = "{}", signature: str = SIG) -> bytes:
    return f'{{"{member}":{body},"signature":"{signature}"}}'.encode()


def _malformed(call: Any) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        call()
    assert info.value.code == MALFORMED, info.value
    return info.value


# --- collateral_documents._Memo: a bounded LRU ----------------------------------------------------------------


class _Maker:
    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, key: str) -> Any:
        def make() -> str:
            self.made.append(key)
            return key.upper()

        return make


def test_memo_keeps_exactly_capacity_items() -> None:
    """Capacity 2 holds 2 items (`>` not `>=`), and the item just stored is kept (the oldest goes: last=False)."""
    memo, maker = _Memo(capacity=2), _Maker()
    assert memo.get("a", maker("a")) == "A"
    assert memo.get("b", maker("b")) == "B"
    assert memo.get("a", maker("a")) == "A" and memo.get("b", maker("b")) == "B"
    assert maker.made == ["a", "b"]  # both hits
    assert memo.get("c", maker("c")) == "C"  # evicts "a", the least recently used
    assert memo.get("c", maker("c")) == "C"
    assert maker.made == ["a", "b", "c"]  # the newest item was kept
    assert memo.get("a", maker("a")) == "A"
    assert maker.made == ["a", "b", "c", "a"]  # "a" was evicted


def test_memo_a_hit_makes_an_item_recent() -> None:
    """LRU, not FIFO: a hit moves the item to the end, so the other one is evicted next."""
    memo, maker = _Memo(capacity=2), _Maker()
    memo.get("a", maker("a"))
    memo.get("b", maker("b"))
    memo.get("a", maker("a"))  # hit: "a" is now the most recent
    memo.get("c", maker("c"))  # evicts "b"
    memo.get("a", maker("a"))
    assert maker.made == ["a", "b", "c"]
    memo.get("b", maker("b"))
    assert maker.made == ["a", "b", "c", "b"]


# --- collateral_documents: parse_signed_json --------------------------------------------------------------------


def test_signed_json_size_limit_is_exact() -> None:
    """A document of exactly MAX_DOC_BYTES parses; one byte more is rejected as too large."""
    doc = _doc()
    at_limit = doc + b" " * (MAX_DOC_BYTES - len(doc))
    assert len(at_limit) == MAX_DOC_BYTES
    assert parse_signed_json(at_limit, "tcbInfo").signature == bytes.fromhex(SIG)
    error = _malformed(lambda: parse_signed_json(at_limit + b" ", "tcbInfo"))
    assert "too large" in error.message and error.actual == str(MAX_DOC_BYTES + 1)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(b"[" + _doc()[1:], id="opens with [ not {"),
        pytest.param(b"x" + _doc()[1:], id="opens with a letter"),
        pytest.param(_doc().replace(b'"tcbInfo":', b'"tcbInfo"='), id="= instead of :"),
        pytest.param(_doc().replace(b'"signature":', b'"signature";'), id="; instead of :"),
        pytest.param(_doc(signature=SIG + "  "), id="signature hex padded with spaces"),
        pytest.param(_doc(signature=SIG[:-2] + " " + SIG[-2:]), id="signature hex with a space"),
    ],
)
def test_signed_json_structure_is_strict(doc: bytes) -> None:
    _malformed(lambda: parse_signed_json(doc, "tcbInfo"))


# --- collateral_documents: dcap-qvl collateral.json -------------------------------------------------------------


def _collateral_json(data: dict[str, Any]) -> dict[str, bytes]:
    return {"collateral.json": json.dumps(data).encode()}


def test_collateral_json_size_limit_is_exact() -> None:
    """collateral.json of exactly 4 * MAX_DOC_BYTES parses; one byte more is rejected as too large."""
    doc = json.dumps({"root_ca_crl": "00ff"}).encode()
    at_limit = doc + b" " * (4 * MAX_DOC_BYTES - len(doc))
    assert collateral_from_files({"collateral.json": at_limit}).root_ca_crl == b"\x00\xff"
    error = _malformed(lambda: collateral_from_files({"collateral.json": at_limit + b" "}))
    assert "too large" in error.message and error.actual == str(4 * MAX_DOC_BYTES + 1)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"tcb_info": "{}"}, id="tcb_info without a signature"),
        pytest.param({"qe_identity": "{}", "qe_identity_signature": None}, id="qe_identity signature null"),
        pytest.param({"tcb_info": "{}", "tcb_info_signature": SIG + "  "}, id="signature hex padded with spaces"),
        pytest.param({"pck_crl": "zz"}, id="pck_crl not hex"),
        pytest.param({"root_ca_crl": "0"}, id="root_ca_crl odd hex"),
        pytest.param({"pck_crl": 5}, id="pck_crl a number"),
        pytest.param({"root_ca_crl": 0}, id="root_ca_crl zero"),
        pytest.param({"root_ca_crl": [1]}, id="root_ca_crl a list"),
        pytest.param({"pck_crl_issuer_chain": 0}, id="chain zero"),
        pytest.param({"tcb_info_issuer_chain": []}, id="chain empty list"),
    ],
)
def test_collateral_json_rejects_ill_typed_members(data: dict[str, Any]) -> None:
    _malformed(lambda: collateral_from_files(_collateral_json(data)))


def test_collateral_json_accepts_well_typed_members() -> None:
    """The counterpart: the same members well typed parse (hex CRLs become bytes)."""
    col = collateral_from_files(
        _collateral_json({"tcb_info": "{}", "tcb_info_signature": SIG, "pck_crl": "00ff", "root_ca_crl": "01"})
    )
    assert col.tcb_info is not None and col.tcb_info.signature == bytes.fromhex(SIG)
    assert (col.pck_crl, col.root_ca_crl) == (b"\x00\xff", b"\x01")


# --- pck.py: the SGX extension ------------------------------------------------------------------------------------


def _invalid(cert: Any) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        pck_info(cert)
    assert info.value.code == "TDX_PCK_EXTENSION_INVALID", info.value
    return info.value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(octets(b"x"), id="OCTET STRING"),
        pytest.param(b"\x02\x01\x05", id="INTEGER"),
        pytest.param(b"\x0c\x01x", id="UTF8String"),
        pytest.param(b"\x03\x02\x00\x01", id="BIT STRING"),
    ],
)
def test_extension_that_is_not_a_sequence(value: bytes) -> None:
    """Reported as such in the signed result's expected/actual, not as whatever fails next."""
    error = _invalid(cert_with(value))
    assert (error.expected, error.actual) == ("SEQUENCE", type(core.load(value)).__name__)
    assert "the SGX extension is not a SEQUENCE" in error.message


DUPLICATES = {
    "FMSPC": seq(
        pair("2", tcb()),
        pair("3", octets(b"\0\0")),
        pair("4", octets(bytes.fromhex("90c06f000000"))),
        pair("4", octets(bytes.fromhex("00606a000000"))),
    ),
    "TCB": seq(pair("2", tcb()), pair("2", tcb()), pair("3", octets(b"\0\0")), pair("4", octets(bytes(6)))),
    "PCESVN in the TCB": extension(
        tcb_value=seq(
            *(pair(f"2.{i}", b"\x02\x01\x00") for i in range(1, 17)),
            pair("2.17", b"\x02\x01\x0d"),
            pair("2.17", b"\x02\x01\x0e"),
            pair("2.18", octets(bytes(16))),
        )
    ),
    "a configuration flag": extension({"7": seq(pair("7.1", b"\x01\x01\xff"), pair("7.1", b"\x01\x01\x00"))}),
}


@pytest.mark.parametrize("value", list(DUPLICATES.values()), ids=list(DUPLICATES))
def test_duplicate_oid_is_rejected_even_when_everything_else_is_valid(value: bytes) -> None:
    error = _invalid(cert_with(value))
    assert (error.expected, error.actual) == ("once", "twice") and "appears twice" in error.message


def test_the_same_extension_without_the_duplicate_parses() -> None:
    """The duplicates above are the only fault: without them each extension parses."""
    info = pck_info(cert_with(extension()))
    assert info.fmspc == bytes.fromhex("90c06f000000") and info.pcesvn == 13


def _cert_with_bad_basic_constraints() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX PCK Certificate")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x04\x00"), critical=False)
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSION_OID), extension()), False)
    )
    return builder.sign(key, hashes.SHA256())


def test_certificate_whose_extensions_do_not_parse() -> None:
    cert = _cert_with_bad_basic_constraints()
    with pytest.raises(ValueError):
        _ = cert.extensions
    error = _invalid(cert)
    assert error.expected == SGX_EXTENSION_OID and "do not parse" in error.message


class _Extensions:
    def __init__(self, value: x509.ExtensionType) -> None:
        self.value = value

    def get_extension_for_oid(self, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
        return x509.Extension(oid, False, self.value)


class _Cert:
    """A certificate whose SGX extension decodes to a known extension type (as it would if cryptography ever
    learned the OID): pck_info refuses anything but the raw DER bytes."""

    def __init__(self, value: x509.ExtensionType) -> None:
        self.extensions = _Extensions(value)


def test_sgx_extension_of_an_unexpected_type() -> None:
    error = _invalid(cast(x509.Certificate, _Cert(x509.BasicConstraints(ca=False, path_length=None))))
    assert (error.expected, error.actual) == ("DER bytes", "BasicConstraints")


# --- pcs.py: keys and envelopes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 5, 7])
def test_tcb_info_key_needs_a_6_byte_fmspc(size: int) -> None:
    with pytest.raises(ValueError, match="FMSPC must be 6 bytes"):
        tcb_info_key(bytes(size))
    assert tcb_info_key(bytes.fromhex("00906ea10000")).cache_id() == "intel.tcb_info?fmspc=00906EA10000"


def _unavailable(call: Any) -> CollateralUnavailableError:
    with pytest.raises(CollateralUnavailableError) as info:
        call()
    assert info.value.code == "COLLATERAL_MALFORMED", info.value
    return info.value


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        pytest.param(KIND_TCB_INFO, b"\xff", id="TCB info not UTF-8"),
        pytest.param(KIND_QE_IDENTITY, b"{\xc3", id="QE identity not UTF-8"),
        pytest.param(KIND_PCK_CRL, b"abc", id="CRL of odd hex"),
        pytest.param(KIND_PCK_CRL, b"-----BEGIN X509 CRL-----\n!!\n-----END X509 CRL-----\n", id="CRL bad PEM"),
    ],
)
def test_envelope_of_an_unparseable_body(kind: str, body: bytes) -> None:
    assert "does not parse" in _unavailable(lambda: envelope(kind, body, "")).message


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'{"body": 5, "issuer_chain": ""}', id="body a number"),
        pytest.param(b'{"body": "{}", "issuer_chain": 5}', id="chain a number"),
        pytest.param(b'{"body": "{}", "issuer_chain": null}', id="chain null"),
        pytest.param(b'{"body": null, "issuer_chain": "x"}', id="body null"),
        pytest.param(b'{"body": 1, "issuer_chain": 2}', id="both numbers"),
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b'{"body": "{}"}', id="no issuer_chain"),
    ],
)
def test_open_envelope_rejects_what_envelope_does_not_make(data: bytes) -> None:
    error = _unavailable(lambda: open_envelope(KIND_TCB_INFO, data))
    assert "not a PCS collateral envelope" in error.message


def test_open_envelope_round_trip() -> None:
    assert open_envelope(KIND_TCB_INFO, envelope(KIND_TCB_INFO, b"{}", "PEM")) == (b"{}", b"PEM")
    assert open_envelope(KIND_PCK_CRL, envelope(KIND_PCK_CRL, b"\x30\x00", "")) == (b"\x30\x00", b"")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2025-01-01T00:00:00+02:00", dt.datetime(2024, 12, 31, 22, tzinfo=dt.UTC), id="+02:00"),
        pytest.param("2025-01-01T00:00:00-05:30", dt.datetime(2025, 1, 1, 5, 30, tzinfo=dt.UTC), id="-05:30"),
        pytest.param("2025-01-01T00:00:00Z", dt.datetime(2025, 1, 1, tzinfo=dt.UTC), id="Z"),
        pytest.param("2025-01-01T00:00:00", dt.datetime(2025, 1, 1, tzinfo=dt.UTC), id="naive is UTC"),
    ],
)
def test_next_update_with_an_offset_is_converted_to_utc(text: str, expected: dt.datetime) -> None:
    doc = _doc("tcbInfo", json.dumps({"nextUpdate": text}))
    when = next_update(KIND_TCB_INFO, envelope(KIND_TCB_INFO, doc, ""))
    assert when == expected and when.utcoffset() == dt.timedelta(0)


# --- evidence.py: items the source delivered that do not parse are rejected ---------------------------------------


class _Bad:
    """Serves `inner`'s items except the TCB info, which it delivers as `data` (a fetch that succeeds with an item
    that does not parse), and records what the verifier rejects (a RejectingSource)."""

    def __init__(self, inner: Any, data: bytes) -> None:
        self.inner, self.data = inner, data
        self.rejected: dict[str, str] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        if key.kind == KIND_TCB_INFO:
            return CollateralItem(key, self.data, at, at + dt.timedelta(days=1), "cache")
        return cast(CollateralItem, self.inner.fetch(key, at=at))

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected[item.key.kind] = reason


BAD_TCB_INFO = {
    "not an envelope": (lambda pki: b"garbage", "COLLATERAL_MALFORMED"),
    "no signature": (lambda pki: envelope(KIND_TCB_INFO, b'{"tcbInfo":{}}', ""), MALFORMED),
    "signature too short": (
        lambda pki: envelope(
            KIND_TCB_INFO, _doc(signature="00" * 63), pki.collateral_files()["tcb_info_issuer_chain.pem"].decode()
        ),
        MALFORMED,
    ),
}


@pytest.mark.parametrize("request_collateral", [True, False], ids=["request decides", "verification fails"])
@pytest.mark.parametrize("bad", list(BAD_TCB_INFO), ids=list(BAD_TCB_INFO))
def test_a_served_item_that_does_not_parse_is_rejected(bad: str, request_collateral: bool) -> None:
    pki = FakeIntelPki()
    make, code = BAD_TCB_INFO[bad]
    source = _Bad(pki.source(), make(pki))
    files = pki.collateral_files() if request_collateral else {}
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=files, source=source)
    verified = TdxVerifier().verify(pki.quote(), ctx)
    if request_collateral:
        assert verified.failure is None and verified.incomplete is None, verified
    else:
        assert verified.failure is not None or verified.incomplete is not None, verified
    assert source.rejected == {KIND_TCB_INFO: code}, source.rejected
