"""TLS client certificates (mTLS) under a configured set of client CAs, decided by `cryptography.x509.verification`.

The question answered here: is this peer chain a valid client certificate under these client CAs at this instant?
The admin interceptor asks it for admin certificates and, when configured, for appraisal ones
(verifier.transport.grpc.admin_auth). Path building and validation (RFC 5280 section 6.1) are the library's
client verifier (`PolicyBuilder().store(...).time(...).max_chain_depth(...).build_client_verifier()`), with its
webpki-style profile (CA/Browser Forum Baseline Requirements section 7.1, applied to client certificates):

- the leaf: X.509 v3; basicConstraints, when present, CA=false; keyUsage, when present, without keyCertSign;
  extendedKeyUsage, when present, includes id-kp-clientAuth (RFC 5280 section 4.2.1.12; anyExtendedKeyUsage
  alone is not enough); no unknown critical extension;
- every issuer, the configured CA included: X.509 v3, a critical basicConstraints with CA=true and a pathLen that
  is respected, a keyUsage asserting keyCertSign, an extendedKeyUsage (when present) allowing clientAuth, name
  constraints honoured;
- signatures: ECDSA with SHA-256/384/512 on P-256/384/521 keys, RSA PKCS#1 v1.5 or RSASSA-PSS with
  SHA-256/384/512 on keys of at least 2048 bits (no Ed25519/Ed448 issuer key, no SHA-1 or SHA-224);
- every certificate of the chain within its validity at `at`, both ends inclusive, to the microsecond (the library
  compares whole seconds: the exact instant is checked again here).

Two webpki requirements are relaxed for the leaf, both legitimate in client certificates: subjectAltName may be
absent (a client certificate names its holder in the subject; the actor is the subject CN) and
authorityKeyIdentifier may be absent (it only helps find the issuer; the issuer's signature is what binds the
leaf). Name constraints of a CA apply to subjectAltNames, so they do not constrain the subject CN.

Refused although the hand-written check this replaced (and gRPC's TLS stack) accepted them, with the reason:
an X.509 v1 leaf (what `openssl x509 -req` without `-extfile` makes: without extensions nothing says it is no CA
or what it may be used for, and the library has no option to accept v1); a CA without keyUsage (what
`openssl req -x509` makes by default: RFC 5280 section 4.2.1.3 requires keyCertSign in a CA); an issuer with an
Ed25519/Ed448 key or an RSA key under 2048 bits (outside the profile's algorithms).

Vendor chains (AMD's RSA-PSS ARK/ASK/VCEK, Intel's PCK, AWS Nitro) are not validated here: they keep
verifier.trust.chain, whose profile they need.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store, VerificationError

from verifier.errors import ConfigError, EvidenceError

from .certs import load_certificate, load_pem_certificates
from .chain import check_validity

MAX_INTERMEDIATES = 4  # CAs between the leaf and a configured client CA (the library's max_chain_depth)
MAX_CA_BUNDLE = 1000  # certificates in one client CA file (a bound; system bundles hold about 150)
MAX_PEER_CHAIN_PEM = 16  # certificates read from the chain gRPC reports (the leaf, intermediates, maybe the root)
_ACTUAL_LIMIT = 300  # characters of the library's refusal kept in `actual`

_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()
_LEAF_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
)


@dataclass(frozen=True)
class VerifiedClientCert:
    """A client certificate that chains to a configured client CA: `chain` runs from `leaf` to that CA (the leaf
    alone when the CA file pins the self-signed leaf itself)."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def _utc(at: datetime.datetime) -> datetime.datetime:
    return at.replace(tzinfo=datetime.UTC) if at.tzinfo is None else at.astimezone(datetime.UTC)


class ClientCertVerifier:
    """The client CAs of one purpose (the admin CA bundle, or the appraisal ones), and the check of a client
    certificate against them.

    The TLS stack has verified the certificate against the bundle it was configured with already; this checks it
    again, against one particular set of CAs (defence in depth, and the only thing that tells an admin CA
    certificate from an appraisal CA one when both bundles are trusted on one port)."""

    def __init__(self, cas: Sequence[x509.Certificate]) -> None:
        """Raises ConfigError CLIENT_CA_EMPTY when `cas` is empty."""
        if not cas:
            raise ConfigError("CLIENT_CA_EMPTY", "the client CA bundle holds no certificate")
        self._store = Store(list(cas))

    @classmethod
    def from_files(cls, *paths: Path) -> ClientCertVerifier:
        """The CAs of PEM bundles `paths`, each certificate fully decoded by the shared loader (verifier.trust.certs).
        Raises ConfigError CLIENT_CA_UNREADABLE, CLIENT_CA_INVALID (no PEM certificate, one that does not decode, or
        more than MAX_CA_BUNDLE) or CLIENT_CA_EMPTY."""
        cas: list[x509.Certificate] = []
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as error:
                raise ConfigError("CLIENT_CA_UNREADABLE", f"cannot read client CA {path}: {error.strerror}") from None
            try:
                cas.extend(load_pem_certificates(data, f"client CA {path}", max_count=MAX_CA_BUNDLE))
            except EvidenceError:
                raise ConfigError("CLIENT_CA_INVALID", f"client CA {path} holds no PEM certificate") from None
        return cls(cas)

    def check(self, leaf_pem: bytes, chain_pem: bytes | None, *, at: datetime.datetime) -> VerifiedClientCert:
        """Whether `leaf_pem` (plus the intermediates among `chain_pem`, the chain gRPC reports in
        `x509_pem_cert_chain`) is a valid client certificate under the configured CAs at `at` (naive: UTC), by the
        profile in this module's docstring (RFC 5280 section 6.1).

        Raises EvidenceError CERT_MALFORMED (the leaf, or the chain, does not decode; more than MAX_PEER_CHAIN_PEM
        certificates), CERT_NOT_YET_VALID or CERT_EXPIRED (the leaf, or a certificate of the chain that was built,
        outside its validity at `at`), CHAIN_ROOT_UNTRUSTED (no chain of at most MAX_INTERMEDIATES intermediates
        from the leaf to a configured CA satisfies the profile; `actual` holds the library's reason)."""
        leaf = load_certificate(leaf_pem, "client certificate")
        extra = load_pem_certificates(chain_pem, "client chain", max_count=MAX_PEER_CHAIN_PEM) if chain_pem else ()
        at = _utc(at)
        check_validity(leaf, at)
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(at)
            .max_chain_depth(MAX_INTERMEDIATES)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_LEAF_POLICY)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, [c for c in extra if c != leaf])
        except VerificationError as error:
            raise EvidenceError(
                "CHAIN_ROOT_UNTRUSTED",
                f"client certificate {leaf.subject.rfc4514_string()} does not chain to a configured client CA",
                expected="a chain to a client CA (webpki client profile)",
                actual=str(error)[:_ACTUAL_LIMIT],
            ) from None
        for cert in verified.chain:  # the library compares whole seconds; the validity ends are instants
            check_validity(cert, at)
        return VerifiedClientCert(leaf, tuple(verified.chain))

    def verify(self, leaf_pem: bytes, chain_pem: bytes | None, *, at: datetime.datetime) -> x509.Certificate | None:
        """The leaf when `check` accepts it at `at`, else None (never raises EvidenceError)."""
        try:
            return self.check(leaf_pem, chain_pem, at=at).leaf
        except EvidenceError:
            return None
