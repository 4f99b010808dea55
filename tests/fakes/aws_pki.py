"""A fake AWS Nitro PKI that mints signed attestation documents for tests.

Structure mirrors the real one (aws-nitro-enclaves-nsm-api docs/attestation_process.md): a self-signed P-384
root named like "aws.nitro-enclaves", two CA intermediates (pathLen 1 and 0) and a leaf valid ~3 hours, all
ECDSA P-384 / SHA-384. Documents are untagged COSE_Sign1 arrays with protected header {1: -35} and a raw r||s
signature, encoded with cbor2 and signed with cryptography (independently of the verifier code).

Usage::

    pki = FakeAwsPki()                                  # fresh keys; pki.now is a fixed UTC instant
    evidence = pki.mint(pcrs={0: b"\\x11" * 48, 1: b"\\x22" * 48, 2: b"\\x33" * 48}, nonce=b"abc")
    anchors = TrustAnchors(pins=pki.pins)               # or pki.anchors()
    verify(parse(evidence), anchors, pki.now)

`mint` overrides (all optional): module_id, digest, timestamp (ms), pcrs (dict index -> bytes), certificate
(DER), cabundle (list of DER, root first), public_key / user_data / nonce (bytes, None for CBOR null, or OMIT
to leave the key out), extra (dict of extra payload fields), alg (protected alg, e.g. -7), protected (whole
protected header map), protected_raw (the protected header's encoded bytes, used as given), unprotected (map),
tag (e.g. 18 wraps the array in a CBOR tag), signature (raw bytes), payload (raw payload bytes, skips the map).
`pki.sign(protected, payload)` returns the raw r||s over the Sig_structure of two encoded byte strings.
Constructor knobs build broken PKIs: leaf_curve (e.g. ec.SECP256R1()), intermediate_ca=False (a CA without
basicConstraints CA), intermediate_validity and leaf_validity ((not_before, not_after)). `pki.foreign()` is a
PKI with identical names but other keys, so its documents chain to a root that `pki.pins` does not pin.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.trust.anchors import TrustAnchors

UTC = datetime.UTC
DEFAULT_NOW = datetime.datetime(2024, 9, 7, 14, 37, 39, tzinfo=UTC)
OMIT: Any = object()  # sentinel: leave an optional payload field out of the map


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Amazon"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "AWS"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    validity: tuple[datetime.datetime, datetime.datetime],
    *,
    ca: bool,
    path_length: int | None,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(ca=ca), critical=ca)
        .sign(issuer_key, hashes.SHA384())
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


class FakeAwsPki:
    ROOT_CN = "aws.nitro-enclaves"

    def __init__(
        self,
        now: datetime.datetime = DEFAULT_NOW,
        *,
        leaf_curve: ec.EllipticCurve | None = None,
        intermediate_ca: bool = True,
        intermediate_validity: tuple[datetime.datetime, datetime.datetime] | None = None,
        leaf_validity: tuple[datetime.datetime, datetime.datetime] | None = None,
    ) -> None:
        self.now = now
        self.not_before = now - datetime.timedelta(minutes=5)
        self.not_after = now + datetime.timedelta(hours=3)
        self._args = (leaf_curve, intermediate_ca, intermediate_validity, leaf_validity)
        p384 = ec.SECP384R1()
        self.root_key = ec.generate_private_key(p384)
        self.regional_key = ec.generate_private_key(p384)
        self.instance_key = ec.generate_private_key(p384)
        self.leaf_key = ec.generate_private_key(leaf_curve or p384)
        day = datetime.timedelta(days=1)
        regional, instance = "abcd.us-east-1.aws.nitro-enclaves", "i-0fake.us-east-1.aws.nitro-enclaves"
        self.root = _cert(
            self.ROOT_CN, self.root_key, self.ROOT_CN, self.root_key, (now - 365 * day, now + 3650 * day),
            ca=True, path_length=None,
        )  # fmt: skip
        self.regional = _cert(
            regional, self.regional_key, self.ROOT_CN, self.root_key, (now - 3 * day, now + 20 * day),
            ca=True, path_length=1,
        )  # fmt: skip
        self.instance = _cert(
            instance, self.instance_key, regional, self.regional_key,
            intermediate_validity or (now - day, now + day), ca=intermediate_ca,
            path_length=0 if intermediate_ca else None,
        )  # fmt: skip
        self.leaf = _cert(
            "i-0fake-enc0123456789abcdef.us-east-1.aws", self.leaf_key, instance, self.instance_key,
            leaf_validity or (self.not_before, self.not_after), ca=False, path_length=None,
        )  # fmt: skip

    @property
    def root_fingerprint(self) -> str:
        return hashlib.sha256(_der(self.root)).hexdigest()

    @property
    def pins(self) -> dict[str, frozenset[str]]:
        return {"aws-nitro": frozenset({self.root_fingerprint})}

    def anchors(self) -> TrustAnchors:
        return TrustAnchors(pins=self.pins)

    @property
    def cabundle(self) -> list[bytes]:
        return [_der(self.root), _der(self.regional), _der(self.instance)]

    def foreign(self) -> FakeAwsPki:
        """Same names and shape, different keys: its root is not in `self.pins`."""
        return FakeAwsPki(self.now)

    @staticmethod
    def default_pcrs() -> dict[int, bytes]:
        return {i: (hashlib.sha384(b"pcr%d" % i).digest() if i in (0, 1, 2, 3, 4) else bytes(48)) for i in range(16)}

    def payload(self, **overrides: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "module_id": overrides.pop("module_id", "i-0fake-enc0123456789abcdef"),
            "digest": overrides.pop("digest", "SHA384"),
            "timestamp": overrides.pop("timestamp", int(self.now.timestamp() * 1000)),
            "pcrs": overrides.pop("pcrs", self.default_pcrs()),
            "certificate": overrides.pop("certificate", _der(self.leaf)),
            "cabundle": overrides.pop("cabundle", self.cabundle),
        }
        for field in ("public_key", "user_data", "nonce"):
            value = overrides.pop(field, None)
            if value is not OMIT:
                doc[field] = value
        doc.update(overrides.pop("extra", {}))
        return doc

    def mint(self, **overrides: Any) -> bytes:
        """A COSE_Sign1 attestation document signed by the leaf key (see the module docstring)."""
        protected = overrides.pop("protected_raw", None)
        if protected is None:
            protected = cbor2.dumps(overrides.pop("protected", {1: overrides.pop("alg", -35)}))
        unprotected = overrides.pop("unprotected", {})
        tag = overrides.pop("tag", None)
        signature = overrides.pop("signature", None)
        payload = overrides.pop("payload", None)
        if payload is None:
            payload = cbor2.dumps(self.payload(**overrides))
        elif overrides:
            raise TypeError(f"payload given together with {sorted(overrides)}")
        if signature is None:
            signature = self.sign(protected, payload)
        item: Any = [protected, unprotected, payload, signature]
        return bytes(cbor2.dumps(item if tag is None else cbor2.CBORTag(tag, item)))

    def sign(self, protected: bytes, payload: bytes) -> bytes:
        """Raw ES384 r||s by the leaf key over ["Signature1", protected, h'', payload] (RFC 9052 section 4.4)."""
        to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
        r, s = decode_dss_signature(self.leaf_key.sign(to_sign, ec.ECDSA(hashes.SHA384())))
        return bytes(r.to_bytes(48, "big") + s.to_bytes(48, "big"))
