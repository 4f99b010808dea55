"""A fake NVIDIA OCSP responder on loopback, with its own small fake NVIDIA PKI.

`FakeNvidiaPki` is an ECDSA P-384 chain shaped like a GPU device chain, leaf first: FMC LF <- GSP BROM <-
Provisioner ICA <- GH100 Identity <- Device Identity CA (self-signed root). `delegate(i)` issues a delegated OCSP
responder certificate under chain[i] (id-kp-OCSPSigning unless `eku=False`); `stranger()` is a self-signed
responder no chain certificate issued.

`ocsp_response(...)` signs one DER OCSPResponse with cryptography's OCSPResponseBuilder: status good / revoked
(with a reason, e.g. certificate_hold) / unknown, any thisUpdate / nextUpdate, a nonce, the signer (the issuing
CA by default, a delegate, a stranger, or a key that does not match the named responder), the CertID hash.

`FakeOcspResponder` answers POST application/ocsp-request like NVIDIA's responder: it parses the request, looks
the certificate up by CertID among the PKI's certificates and answers per `script` (a `Behaviour` per serial,
default good, signed by the issuer, the nonce echoed). It records every request (`requests`: the parsed
OCSPRequest objects, `nonces`: their nonce extensions) so tests can check the CertID hash and the nonce sent.

Usage::

    pki = FakeNvidiaPki()
    with FakeOcspResponder(pki) as responder:
        responder.script[pki.chain[2].serial_number] = Behaviour(status="revoked", reason=KEY_COMPROMISE)
        NvidiaOcsp(responder.url).fetch(...)
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from verifier.errors import UnavailableError
from verifier.trust.ocsp import CertId, FetchedOcsp, build_request, new_nonce

UTC = dt.UTC
AT = dt.datetime(2025, 3, 1, tzinfo=UTC)  # the GPU vectors' verify_at
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
NAMES = (
    "GH100 A01 FSP FMC LF",
    "GH100 A01 GSP BROM",
    "NVIDIA GH100 Provisioner ICA 1",
    "NVIDIA GH100 Identity",
    "NVIDIA Device Identity CA",
)
Status = Literal["good", "revoked", "unknown"]


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NVIDIA Corporation"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def issue(
    cn: str,
    *,
    issuer: Issued | None,
    ca: bool,
    eku: Sequence[x509.ObjectIdentifier] = (),
    not_before: dt.datetime = AT - 365 * DAY,
    not_after: dt.datetime = AT + 365 * DAY,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """A P-384 certificate `cn` signed by `issuer` (None: self-signed), ECDSA SHA-384."""
    key = key or ec.generate_private_key(ec.SECP384R1())
    signer = issuer.key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer is not None else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return Issued(builder.sign(signer, hashes.SHA384()), key)


class FakeNvidiaPki:
    """The five-certificate chain of NAMES (`chain`, leaf first) with its keys (`issued`)."""

    def __init__(self) -> None:
        root = issue(NAMES[-1], issuer=None, ca=True)
        issued = [root]
        for cn in reversed(NAMES[:-1]):
            issued.append(issue(cn, issuer=issued[-1], ca=cn != NAMES[0]))
        self.issued: list[Issued] = list(reversed(issued))
        self.chain: list[x509.Certificate] = [i.cert for i in self.issued]
        self._delegates: dict[int, Issued] = {}

    def delegate(self, index: int, *, eku: bool = True, not_after: dt.datetime | None = None) -> Issued:
        """A delegated responder certificate issued by chain[index] (cached per index for the defaults)."""
        if eku and not_after is None and index in self._delegates:
            return self._delegates[index]
        usages = [ExtendedKeyUsageOID.OCSP_SIGNING] if eku else [ExtendedKeyUsageOID.CLIENT_AUTH]
        made = issue(
            f"NVIDIA OCSP Responder {index}",
            issuer=self.issued[index],
            ca=False,
            eku=usages,
            not_after=not_after or AT + 365 * DAY,
        )
        if eku and not_after is None:
            self._delegates[index] = made
        return made

    def stranger(self) -> Issued:
        """A self-signed responder with id-kp-OCSPSigning that no chain certificate issued."""
        return issue("NVIDIA OCSP Responder", issuer=None, ca=False, eku=[ExtendedKeyUsageOID.OCSP_SIGNING])


def ocsp_response(
    cert: x509.Certificate,
    issuer: Issued,
    *,
    status: Status = "good",
    reason: x509.ReasonFlags | None = None,
    this_update: dt.datetime = AT - HOUR,
    next_update: dt.datetime | None = AT + DAY,
    nonce: bytes | None = None,
    responder: Issued | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
    embed: Sequence[x509.Certificate] | None = None,
    by_hash: bool = False,
    cert_id_hash: hashes.HashAlgorithm | None = None,
    signature_hash: hashes.HashAlgorithm | None = None,
) -> bytes:
    """A DER OCSPResponse for `cert` signed by `responder` (default: the issuer itself) with `signing_key`
    (default: the responder's key; another key makes a response the named responder did not sign)."""
    responder = responder or issuer
    statuses = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }
    revoked = status == "revoked"
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer.cert,
        algorithm=cert_id_hash or hashes.SHA384(),
        cert_status=statuses[status],
        this_update=this_update,
        next_update=next_update,
        revocation_time=this_update - DAY if revoked else None,
        revocation_reason=reason if revoked else None,
    )
    encoding = ocsp.OCSPResponderEncoding.HASH if by_hash else ocsp.OCSPResponderEncoding.NAME
    named = responder.cert
    if signing_key is not None:  # cryptography signs only with the named responder's key: name an impostor
        named = (
            x509.CertificateBuilder(responder.cert.subject, responder.cert.subject, signing_key.public_key())
            .serial_number(1)
            .not_valid_before(AT - 365 * DAY)
            .not_valid_after(AT + 365 * DAY)
            .sign(signing_key, hashes.SHA384())
        )
    builder = builder.responder_id(encoding, named)
    certificates = list(embed) if embed is not None else ([] if responder is issuer else [responder.cert])
    if certificates:
        builder = builder.certificates(certificates)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    signed = builder.sign(signing_key or responder.key, signature_hash or hashes.SHA384())
    return signed.public_bytes(Encoding.DER)


def unsuccessful(status: ocsp.OCSPResponseStatus = ocsp.OCSPResponseStatus.TRY_LATER) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


@dataclass
class Behaviour:
    """How the fake answers for one certificate. `nonce`: "echo" (default), "wrong" or "none"; `signer`: "issuer",
    "delegate", "stranger" or "wrong-key" (names the issuer, signs with another key); `http_status` other than 200
    answers that status with an empty body; `raw` answers these bytes as they are."""

    status: Status = "good"
    reason: x509.ReasonFlags | None = None
    nonce: str = "echo"
    signer: str = "issuer"
    this_update: dt.datetime = AT - HOUR
    next_update: dt.datetime | None = AT + DAY
    http_status: int = 200
    raw: bytes | None = None


@dataclass
class FakeOcspResponder:
    pki: FakeNvidiaPki
    script: dict[int, Behaviour] = field(default_factory=dict)
    requests: list[ocsp.OCSPRequest] = field(default_factory=list)
    nonces: list[x509.Extension[x509.OCSPNonce] | None] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="fake-ocsp", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeOcspResponder:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def answer(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        """The HTTP status and body for one request body."""
        request = ocsp.load_der_ocsp_request(body)
        try:
            nonce_ext: x509.Extension[x509.OCSPNonce] | None = request.extensions.get_extension_for_class(
                x509.OCSPNonce
            )
        except x509.ExtensionNotFound:
            nonce_ext = None
        with self._lock:
            self.requests.append(request)
            self.nonces.append(nonce_ext)
            self.content_types.append(content_type)
        index = next((i for i, c in enumerate(self.pki.chain) if c.serial_number == request.serial_number), None)
        if index is None or index + 1 >= len(self.pki.chain):
            return 200, ocsp_response(self.pki.chain[1], self.pki.issued[2], status="unknown")  # some other answer
        behaviour = self.script.get(request.serial_number, Behaviour())
        if behaviour.http_status != 200:
            return behaviour.http_status, b""
        if behaviour.raw is not None:
            return 200, behaviour.raw
        nonce = nonce_ext.value.nonce if nonce_ext is not None else None
        if behaviour.nonce == "wrong":
            nonce = b"\x00" * 32
        elif behaviour.nonce == "none":
            nonce = None
        issuer = self.pki.issued[index + 1]
        responder = {"issuer": issuer, "delegate": self.pki.delegate(index + 1), "stranger": self.pki.stranger()}.get(
            behaviour.signer, issuer
        )
        return 200, ocsp_response(
            self.pki.chain[index],
            issuer,
            status=behaviour.status,
            reason=behaviour.reason,
            this_update=behaviour.this_update,
            next_update=behaviour.next_update,
            nonce=nonce,
            responder=responder,
            signing_key=ec.generate_private_key(ec.SECP384R1()) if behaviour.signer == "wrong-key" else None,
        )

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 65536))
                try:
                    status, payload = fake.answer(body, self.headers.get("Content-Type", ""))
                except ValueError:
                    status, payload = 200, unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
                self.send_response(status)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@dataclass
class DirectFetcher:
    """An OcspFetcher that asks the fake responder's `answer` directly, without HTTP (tests/unit/collateral has
    the HTTP path). `unavailable`: every fetch fails like an offline source."""

    responder: FakeOcspResponder
    rejected: list[str] = field(default_factory=list)
    asked: list[CertId] = field(default_factory=list)
    unavailable: bool = False

    def fetch_ocsp(self, cid: CertId, *, at: dt.datetime) -> FetchedOcsp:
        self.asked.append(cid)
        if self.unavailable:
            raise UnavailableError("COLLATERAL_OFFLINE", "offline")
        nonce = new_nonce()
        _, body = self.responder.answer(build_request(cid, nonce), "application/ocsp-request")
        return FetchedOcsp(body, nonce)

    def reject_ocsp(self, fetched: FetchedOcsp, *, reason: str) -> None:
        self.rejected.append(reason)


def good_responses(pki: FakeNvidiaPki, indices: range = range(1, 4), **kw: Any) -> list[bytes]:
    """Responses "good" (signed by each issuer) for chain[i], i in `indices` (default: the device chain's checked
    certificates, BROM, ICA, Identity); `kw` as `ocsp_response` takes them."""
    return [ocsp_response(pki.chain[i], pki.issued[i + 1], **kw) for i in indices]


@pytest.fixture(name="nvidia_pki", scope="module")
def nvidia_pki_fixture() -> FakeNvidiaPki:
    return FakeNvidiaPki()


@pytest.fixture(name="ocsp_responder")
def ocsp_responder_fixture(nvidia_pki: FakeNvidiaPki) -> Iterator[FakeOcspResponder]:
    """A started FakeOcspResponder over the module's FakeNvidiaPki."""
    with FakeOcspResponder(nvidia_pki) as responder:
        yield responder
