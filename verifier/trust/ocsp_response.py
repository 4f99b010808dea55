"""One OCSP response checked against one certificate (RFC 6960), for `verifier.trust.ocsp.check_chain`.

What is checked, in order (`verify_response`):

- size (at most MAX_RESPONSE_BYTES) and parse; responseStatus successful (else the responder's status is said);
- a SingleResponse whose CertID is this certificate: hashAlgorithm one of SHA-1/256/384/512, issuerNameHash and
  issuerKeyHash of the issuer, serialNumber of the certificate (computed by cryptography's own CertID code);
- the signer (RFC 6960 section 4.2.2.2): the certificate named by the ResponderID (by name or by key hash) is the
  issuing CA itself, or a delegated responder certificate directly issued (and signed) by that CA, carrying
  id-kp-OCSPSigning in its extended key usage and valid at the appraisal time. Certificates the response embeds
  are candidates, never trusted for themselves;
- the signature over tbsResponseData: ECDSA with SHA-256/384/512 (NVIDIA signs ECDSA P-384 SHA-384) by that key;
- the nonce (RFC 8954): when the request carried one, the response must echo exactly it;
- the window: thisUpdate no later than the appraisal time plus CLOCK_SKEW, and the appraisal time
  before nextUpdate (a response at or past nextUpdate is not used). A response without nextUpdate is used only
  as the fresh answer to our own nonce (and never cached);
- the status: good, revoked (any reason, certificateHold included) or unknown.

Every failure is an `OcspResponseError` (a ValueError without an error code: `check_chain` turns it into an
"unavailable" status with its message); nothing else escapes for a malformed response.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

MAX_RESPONSE_BYTES = 64 * 1024  # NVIDIA's answers are about 1-2 KB (one SingleResponse, one certificate)
MAX_SINGLE_RESPONSES = 64
MAX_EMBEDDED_CERTS = 8
NONCE_BYTES = 32  # as NVIDIA's verifier sends (RFC 8954: 1..32 octets)
CLOCK_SKEW = dt.timedelta(minutes=5)
CERT_ID_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_ECDSA = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)
# What cryptography raises for a badly encoded part it decodes lazily (a ValueError subclass mostly).
_DECODING = (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)

Problem = Literal["malformed", "other-certificate", "unauthorized", "time"]


class OcspResponseError(ValueError):
    """The response cannot be used for this certificate. `problem`: "malformed", "other-certificate" (no
    SingleResponse for it), "unauthorized" (signer, signature or nonce) or "time" (outside its window, or a
    delegated responder certificate not valid at the appraisal time: depends on the appraisal time only)."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem: Problem = problem
        self.message = message


@dataclass(frozen=True)
class CertId:
    """An OCSP CertID (RFC 6960 section 4.1.1): `algorithm` a key of CERT_ID_HASHES."""

    algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int


@dataclass(frozen=True)
class VerifiedStatus:
    """What a verified SingleResponse says. `reason`: the revocation reason's name ("certificate_hold", ...)."""

    status: Literal["good", "revoked", "unknown"]
    reason: str | None
    this_update: dt.datetime
    next_update: dt.datetime | None
    produced_at: dt.datetime


def cert_id(cert: x509.Certificate, issuer: x509.Certificate, algorithm: str = "sha384") -> CertId:
    """The CertID of `cert` issued by `issuer`, hashed with `algorithm` (a key of CERT_ID_HASHES). Raises
    KeyError for another algorithm, ValueError for a certificate cryptography cannot encode."""
    hash_algorithm = CERT_ID_HASHES[algorithm]()
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hash_algorithm).build()
    return CertId(algorithm, request.issuer_name_hash, request.issuer_key_hash, request.serial_number)


def build_request(cid: CertId, nonce: bytes | None) -> bytes:
    """A DER OCSPRequest for `cid` with the nonce extension (critical, as NVIDIA's verifier sends it) when `nonce`
    is given. Raises KeyError / ValueError for a CertID cryptography refuses."""
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        cid.issuer_name_hash, cid.issuer_key_hash, cid.serial, CERT_ID_HASHES[cid.algorithm]()
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=True)
    return builder.build().public_bytes(Encoding.DER)


def common_name(cert: x509.Certificate) -> str:
    """The subject CN of `cert` (else its whole subject), at most 100 characters. Never raises."""
    try:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        text = str(names[0].value) if names else cert.subject.rfc4514_string()
    except _DECODING:
        text = "(undecodable subject)"
    return text[:100]


def load_response(der: bytes) -> ocsp.OCSPResponse:
    """`der` as an OCSPResponse. Raises OcspResponseError "malformed" past MAX_RESPONSE_BYTES or when it does not
    parse."""
    if len(der) > MAX_RESPONSE_BYTES:
        raise OcspResponseError("malformed", f"OCSP response of {len(der)} bytes exceeds {MAX_RESPONSE_BYTES}")
    try:
        return ocsp.load_der_ocsp_response(der)
    except _DECODING as error:
        raise OcspResponseError("malformed", f"OCSP response does not parse: {str(error)[:120]}") from None


def verify_response(
    response: ocsp.OCSPResponse,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    at: dt.datetime,
    nonce: bytes | None = None,
) -> VerifiedStatus:
    """The status `response` gives `cert` (issued by `issuer`) at `at` (UTC), every rule of the module docstring
    checked; `nonce`: the one our request carried (None: a response supplied with the evidence). Raises
    OcspResponseError (never anything else)."""
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspResponseError("malformed", f"the responder answered {response.response_status.name}")
    try:
        single = _single_for(response, cert, issuer)
        _check_signer(response, issuer, at)
        _check_nonce(response, nonce)
        return _status(response, single, at, fresh=nonce is not None)
    except OcspResponseError:
        raise
    except _DECODING as error:
        raise OcspResponseError("malformed", f"OCSP response is malformed: {str(error)[:120]}") from None


def _single_for(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    """The SingleResponse for `cert` (a revoked one first when several match)."""
    ids: dict[str, CertId] = {}
    matches: list[ocsp.OCSPSingleResponse] = []
    for index, single in enumerate(response.responses):
        if index >= MAX_SINGLE_RESPONSES:
            raise OcspResponseError("malformed", f"more than {MAX_SINGLE_RESPONSES} SingleResponses")
        name = single.hash_algorithm.name
        if name not in CERT_ID_HASHES:
            continue
        expected = ids.get(name) or ids.setdefault(name, cert_id(cert, issuer, name))
        if (single.issuer_name_hash, single.issuer_key_hash, single.serial_number) == (
            expected.issuer_name_hash,
            expected.issuer_key_hash,
            expected.serial,
        ):
            matches.append(single)
    if not matches:
        raise OcspResponseError(
            "other-certificate", f"no SingleResponse for serial {cert.serial_number:x} of this issuer"
        )
    revoked = [s for s in matches if s.certificate_status == ocsp.OCSPCertStatus.REVOKED]
    return (revoked or matches)[0]


def _candidates(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> Iterable[x509.Certificate]:
    """The issuer, then the embedded certificates, that the ResponderID names."""
    embedded = response.certificates
    if len(embedded) > MAX_EMBEDDED_CERTS:
        raise OcspResponseError("malformed", f"more than {MAX_EMBEDDED_CERTS} embedded certificates")
    name, key_hash = response.responder_name, response.responder_key_hash
    for candidate in (issuer, *embedded):
        if name is not None and candidate.subject == name:
            yield candidate
        elif (
            key_hash is not None
            and x509.SubjectKeyIdentifier.from_public_key(candidate.public_key()).digest == key_hash
        ):
            yield candidate


def _check_signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, at: dt.datetime) -> None:
    """Some certificate the ResponderID names is authorised (the CA or its delegate) and signed `response`."""
    refusal = OcspResponseError("unauthorized", "no certificate matches the ResponderID")
    for candidate in _candidates(response, issuer):
        try:
            if candidate != issuer:
                _check_delegate(candidate, issuer, at)
            _check_signature(response, candidate)
            return
        except OcspResponseError as error:
            refusal = error
    raise refusal


def _check_delegate(responder: x509.Certificate, issuer: x509.Certificate, at: dt.datetime) -> None:
    """RFC 6960 section 4.2.2.2: directly issued by the CA, id-kp-OCSPSigning, valid at `at`."""
    who = f"responder certificate {common_name(responder)}"
    if responder.issuer != issuer.subject:
        raise OcspResponseError("unauthorized", f"{who} is not issued by {common_name(issuer)}")
    try:
        responder.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        raise OcspResponseError("unauthorized", f"{who} is not signed by {common_name(issuer)}") from None
    try:
        usages = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise OcspResponseError("unauthorized", f"{who} has no extended key usage (id-kp-OCSPSigning)") from None
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise OcspResponseError("unauthorized", f"{who} lacks id-kp-OCSPSigning")
    if not responder.not_valid_before_utc <= at <= responder.not_valid_after_utc:
        raise OcspResponseError("time", f"{who} is not valid at the appraisal time")


def _check_signature(response: ocsp.OCSPResponse, signer: x509.Certificate) -> None:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    if response.signature_algorithm_oid not in _ECDSA or not isinstance(key, ec.EllipticCurvePublicKey):
        raise OcspResponseError(
            "unauthorized", f"signature algorithm {response.signature_algorithm_oid.dotted_string} is not ECDSA SHA-2"
        )
    if not isinstance(algorithm, hashes.SHA256 | hashes.SHA384 | hashes.SHA512):
        raise OcspResponseError("unauthorized", "signature hash is not SHA-256/384/512")
    try:
        key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
    except InvalidSignature:
        raise OcspResponseError("unauthorized", f"signature does not verify with {common_name(signer)}") from None


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes | None) -> None:
    if nonce is None:
        return
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        raise OcspResponseError("unauthorized", "the response does not echo the request's nonce") from None
    if echoed != nonce:
        raise OcspResponseError("unauthorized", "the response's nonce is not the request's")


def _status(
    response: ocsp.OCSPResponse, single: ocsp.OCSPSingleResponse, at: dt.datetime, *, fresh: bool
) -> VerifiedStatus:
    this_update, next_update, produced_at = single.this_update_utc, single.next_update_utc, response.produced_at_utc
    if this_update > at + CLOCK_SKEW:  # producedAt is not checked: thisUpdate is what the status holds from
        raise OcspResponseError("time", f"thisUpdate {_rfc3339(this_update)} is after the appraisal time")
    if next_update is None and not fresh:
        raise OcspResponseError("time", "no nextUpdate: the response's freshness cannot be judged")
    if next_update is not None and at >= next_update:
        raise OcspResponseError("time", f"past its nextUpdate {_rfc3339(next_update)}")
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.GOOD:
        return VerifiedStatus("good", None, this_update, next_update, produced_at)
    if status == ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason.name if single.revocation_reason is not None else "unspecified"
        return VerifiedStatus("revoked", reason, this_update, next_update, produced_at)
    return VerifiedStatus("unknown", None, this_update, next_update, produced_at)


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
