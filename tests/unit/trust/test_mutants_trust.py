"""Tests that kill surviving mutants of scripts/mutation.py in verifier/trust (loader error messages, validity at
non-UTC times, the ECDSA (r, s) range) and verifier/collateral/ordering.py (sequence numbers, issue dates)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.collateral.ordering import ItemVersion, version_of
from verifier.errors import EvidenceError
from verifier.trust import certs as certs_module
from verifier.trust import signature_memo
from verifier.trust.certs import load_certificate, load_crl, load_der_certificate, load_pem_certificates
from verifier.trust.chain import check_validity
from verifier.trust.ecdsa import P256_ORDER, P384_ORDER, verify_rs

PLUS2 = dt.timezone(dt.timedelta(hours=2))
NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


# --- certs.py: `actual` of CERT_MALFORMED / CRL_MALFORMED ----------------------------------------------------------


def _parser_message(parse: Any, data: bytes) -> str:
    with pytest.raises(Exception) as info:  # whatever the parser raises
        parse(data)
    message = str(info.value)
    assert message, "the parser gave no message: pick other input"
    return message[:200]


def test_a_malformed_der_certificate_reports_the_parsers_message() -> None:
    data = b"\x30\x03\x02\x01\x01"
    with pytest.raises(EvidenceError) as info:
        load_der_certificate(data, "test certificate")
    assert info.value.code == "CERT_MALFORMED"
    assert info.value.actual == _parser_message(x509.load_der_x509_certificate, data)


def test_a_malformed_pem_certificate_reports_the_parsers_message() -> None:
    data = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"
    with pytest.raises(EvidenceError) as info:
        load_pem_certificates(data, "test bundle", max_count=4)
    assert info.value.code == "CERT_MALFORMED"
    assert info.value.actual == _parser_message(x509.load_pem_x509_certificates, data)


def test_a_malformed_crl_reports_the_parsers_message() -> None:
    data = b"\x30\x03\x02\x01\x01"
    with pytest.raises(EvidenceError) as info:
        load_crl(data)
    assert info.value.code == "CRL_MALFORMED"
    assert info.value.actual == _parser_message(x509.load_der_x509_crl, data)


class _Silent(Exception):
    """An exception with an empty message, as some decoders raise."""


def _raise_silently(*_: object) -> None:
    raise _Silent()


def test_a_certificate_error_without_a_message_reports_the_exception_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certs_module, "touch_certificate", _raise_silently)
    with pytest.raises(EvidenceError) as info:
        load_certificate(_certificate(NOT_BEFORE, NOT_AFTER).public_bytes(Encoding.DER), "test certificate")
    assert info.value.code == "CERT_MALFORMED" and info.value.actual == "_Silent"


def test_a_crl_error_without_a_message_reports_the_exception_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(certs_module, "touch_crl", _raise_silently)
    with pytest.raises(EvidenceError) as info:
        load_crl(_crl())
    assert info.value.code == "CRL_MALFORMED" and info.value.actual == "_Silent"


# --- chain.py: an aware non-UTC appraisal time ---------------------------------------------------------------------


_KEY = ec.generate_private_key(ec.SECP256R1())
_SUBJECT = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "validity test")])


def _certificate(not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_SUBJECT)
        .issuer_name(_SUBJECT)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(_KEY, hashes.SHA256())
    )


def _crl() -> bytes:
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_SUBJECT)
        .last_update(NOT_BEFORE)
        .next_update(NOT_AFTER)
        .sign(_KEY, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def _validity_code(at: dt.datetime) -> str | None:
    try:
        check_validity(_certificate(NOT_BEFORE, NOT_AFTER), at)
    except EvidenceError as exc:
        return exc.code
    return None


@pytest.mark.parametrize(
    ("instant", "code"),
    [
        (NOT_AFTER - HOUR, None),  # 01:00 at +02:00 wall clock is after notAfter: the instant is what counts
        (NOT_AFTER + HOUR, "CERT_EXPIRED"),
        (NOT_BEFORE - HOUR, "CERT_NOT_YET_VALID"),  # its wall clock at +02:00 is after notBefore
        (NOT_BEFORE + HOUR, None),
    ],
)
def test_validity_at_an_aware_non_utc_time_uses_the_same_instant_as_utc(instant: dt.datetime, code: str) -> None:
    assert _validity_code(instant) == code
    assert _validity_code(instant.astimezone(PLUS2)) == code


# --- ecdsa.py: r and s in [1, n-1] ----------------------------------------------------------------------------------


class _AcceptingKey:
    """A P-256 "public key" whose verify accepts every signature: only the range check can refuse."""

    def __init__(self, curve: ec.EllipticCurve) -> None:
        self.curve = curve
        self.calls = 0

    def verify(self, signature: bytes, data: bytes, algorithm: object) -> None:
        self.calls += 1

    def public_bytes(self, encoding: object, format: object) -> bytes:
        return b"\x04fake point"


@pytest.mark.parametrize(("curve", "n"), [(ec.SECP256R1(), P256_ORDER), (ec.SECP384R1(), P384_ORDER)])
def test_verify_rs_refuses_r_or_s_outside_one_to_n_minus_one(curve: ec.EllipticCurve, n: int) -> None:
    key = _AcceptingKey(curve)

    def ok(r: int, s: int) -> bool:
        return verify_rs(key, r, s, b"message", hashes.SHA256())  # type: ignore[arg-type]

    assert ok(1, 1) and ok(n - 1, n - 1) and ok(1, n - 1) and ok(n - 1, 1)  # the fake key accepts in range
    calls = key.calls
    for r, s in [(n, 1), (n, 0), (0, 1), (1, 0), (1, n), (1, n + 1), (n + 1, 1), (0, 0), (n, n), (-1, 1), (1, -1)]:
        assert not ok(r, s), (r, s)
    assert key.calls == calls  # refused before the key was asked
    signature_memo.clear()  # what the accepting fake "verified" leaves no entry behind


# --- collateral/ordering.py -----------------------------------------------------------------------------------------


def _signed_json(member: str, body: dict[str, Any]) -> bytes:
    return json.dumps({"body": json.dumps({member: body}), "issuer_chain": ""}).encode()


@pytest.mark.parametrize(("kind", "member"), [("intel.tcb_info", "tcbInfo"), ("intel.qe_identity", "enclaveIdentity")])
@pytest.mark.parametrize("number", [True, False, "17", 17.0, None, [17]])
def test_a_tcb_evaluation_data_number_that_is_not_an_integer_has_no_number(kind: str, member: str, number: Any) -> None:
    data = _signed_json(member, {"tcbEvaluationDataNumber": number, "issueDate": "2025-06-01T00:00:00Z"})
    assert version_of(kind, data) == ItemVersion(None, dt.datetime(2025, 6, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize(("kind", "member"), [("intel.tcb_info", "tcbInfo"), ("intel.qe_identity", "enclaveIdentity")])
def test_an_integer_tcb_evaluation_data_number_is_kept(kind: str, member: str) -> None:
    data = _signed_json(member, {"tcbEvaluationDataNumber": 17, "issueDate": "2025-06-01T00:00:00Z"})
    assert version_of(kind, data) == ItemVersion(17, dt.datetime(2025, 6, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-06-01T02:00:00+02:00", dt.datetime(2025, 6, 1, 0, 0, tzinfo=dt.UTC)),
        ("2025-06-01T00:30:00-05:00", dt.datetime(2025, 6, 1, 5, 30, tzinfo=dt.UTC)),
        ("2025-06-01T00:00:00Z", dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),
        ("2025-06-01T00:00:00", dt.datetime(2025, 6, 1, tzinfo=dt.UTC)),  # naive: UTC
    ],
)
def test_an_issue_date_with_an_offset_is_the_same_utc_instant(text: str, utc: dt.datetime) -> None:
    version = version_of("intel.tcb_info", _signed_json("tcbInfo", {"tcbEvaluationDataNumber": 3, "issueDate": text}))
    assert version is not None
    assert version.issued == utc and version.issued.utcoffset() == dt.timedelta(0)
