"""The one X.509 certificate and CRL loader for every TEE (RFC 5280 sections 4 and 5).

`cryptography` decodes most of a certificate lazily: the version, names, extensions, key and signature algorithm
are parsed only when first read, and each may then raise (InvalidVersion, DuplicateExtension, ValueError for a
badly encoded name or extension, UnsupportedAlgorithm for an unknown key or signature algorithm...). Attacker
supplied certificates and CRLs must fail where they are loaded, with one stable code, and never later inside chain
validation or claim extraction. So the loaders below read every part later code touches, once, at load time:
certificates fail with EvidenceError CERT_MALFORMED, CRLs with EvidenceError CRL_MALFORMED.

That decoding is a pure function of the input bytes and its result is immutable, so what loaded successfully is
kept in bounded LRUs keyed by the exact input bytes (`verifier.trust.cert_cache`): the same certificate, PEM bundle
or CRL bytes are decoded once per process and every later load returns the same object. Failures are not kept (a
malformed input is decoded, and raises, every time), and nothing time-dependent is: validity, CRL windows
(nextUpdate), signatures and revocation are decided by the callers on every appraisal. `clear_parse_caches` empties
them (cold benchmarks, tests).
"""

from __future__ import annotations

import datetime
import warnings

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning

from verifier.errors import EvidenceError
from verifier.trust.cert_cache import CacheInfo, ContentCache

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_ACTUAL_LIMIT = 200  # characters of a library error message kept in `actual`

# AMD's VCEKs/VLEKs all have serial number 0 (RFC 5280 forbids it; pub. 57230 does it): expected, not news.
# Silence exactly that warning, process-wide (a scoped warnings.catch_warnings is not thread-safe, and appraisals
# run in worker threads). tests/unit/tee/sevsnp/test_snp_certs.py pins that such certificates load.
warnings.filterwarnings(
    "ignore", message="Parsed a serial number which wasn't positive", category=CryptographyDeprecationWarning
)


# Bounds (see verifier.trust.cert_cache for the memory they allow). A touched 0.7 KB vendor certificate keeps ~11 KB
# alive, so a full certificate cache is ~8-11 MB; a decoded CRL keeps about twice its size.
CERTIFICATES: ContentCache[x509.Certificate] = ContentCache("certificates", max_entries=1024, max_bytes=512 * 1024)
PEM_BUNDLES: ContentCache[tuple[x509.Certificate, ...]] = ContentCache(
    "PEM bundles", max_entries=256, max_bytes=512 * 1024
)
CRLS: ContentCache[x509.CertificateRevocationList] = ContentCache("CRLs", max_entries=64, max_bytes=2 * 1024 * 1024)
_CACHES = (CERTIFICATES, PEM_BUNDLES, CRLS)


def clear_parse_caches() -> None:
    """Forget every certificate, PEM bundle and CRL decoded so far (cold benchmark runs, tests). Never raises."""
    for cache in _CACHES:
        cache.clear()


def parse_cache_info() -> tuple[CacheInfo, ...]:
    """Hits, misses and sizes of the parse caches (certificates, PEM bundles, CRLs). Never raises."""
    return tuple(cache.info() for cache in _CACHES)


def _key(data: bytes) -> bytes:
    """`data` as an immutable cache key (a bytearray or memoryview is copied; bytes are used as they are)."""
    return data if type(data) is bytes else bytes(data)


def _is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN")


def _touch_name(name: x509.Name) -> None:
    """Decode every attribute of a Name (values of unusual string types are decoded on access)."""
    for attribute in name:
        _ = (attribute.oid.dotted_string, attribute.value)
    name.rfc4514_string()


def _touch_extensions(extensions: x509.Extensions) -> None:
    """Decode every extension: duplicates and undecodable known extensions raise here."""
    for extension in extensions:
        _ = (extension.oid.dotted_string, extension.critical, extension.value)


def touch_certificate(cert: x509.Certificate) -> None:
    """Read every lazily decoded part of `cert`; raises whatever `cryptography` raises for malformed input."""
    _ = (cert.version, cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc)
    _touch_name(cert.subject)
    _touch_name(cert.issuer)
    _touch_extensions(cert.extensions)
    cert.public_key()
    _ = (cert.signature_algorithm_oid, cert.signature_hash_algorithm, cert.signature_algorithm_parameters)
    _ = (cert.signature, cert.tbs_certificate_bytes, cert.fingerprint(hashes.SHA256()), cert.public_bytes(Encoding.DER))


def _cert_malformed(what: str, exc: BaseException) -> EvidenceError:
    return EvidenceError(
        "CERT_MALFORMED",
        f"{what}: not a valid X.509 certificate",
        expected="X.509 certificate (RFC 5280)",
        actual=str(exc)[:_ACTUAL_LIMIT] or type(exc).__name__,
    )


def load_certificate(data: bytes, what: str) -> x509.Certificate:
    """One certificate, DER or a single PEM block, fully decoded.

    Raises EvidenceError CERT_MALFORMED (naming `what`) when it does not parse, when any part of it does not decode
    (RFC 5280 section 4.1), or when PEM input holds other than exactly one certificate."""
    if _is_pem(data):
        if (count := data.count(PEM_CERTIFICATE)) > 1:
            raise EvidenceError(
                "CERT_MALFORMED", f"{what}: expected one PEM certificate", expected="1", actual=str(count)
            )
        return load_pem_certificates(data, what, max_count=1)[0]
    return load_der_certificate(data, what)


def load_der_certificate(data: bytes, what: str) -> x509.Certificate:
    """One DER certificate (no PEM: for formats that specify DER, such as the Nitro attestation document), fully
    decoded, or the object decoded earlier from the same bytes (`CERTIFICATES`). Raises EvidenceError
    CERT_MALFORMED naming `what` (every time: failures are not kept)."""
    key = _key(data)
    cert = CERTIFICATES.get(key)
    if cert is not None:
        return cert
    try:
        cert = x509.load_der_x509_certificate(key)
        touch_certificate(cert)
    except Exception as exc:  # noqa: BLE001 - any failure to decode attacker-supplied bytes is CERT_MALFORMED
        raise _cert_malformed(what, exc) from None
    return CERTIFICATES.put(key, cert)


def _touched(cert: x509.Certificate) -> x509.Certificate:
    """`cert` (from a PEM block) fully decoded, or the certificate already decoded from its DER (`CERTIFICATES`),
    so that the same certificate in PEM and in DER is one object. Its DER is `public_bytes`, the re-encoding of what
    was parsed, from which the DER loader decodes the same structure. Raises what `touch_certificate` raises."""
    try:
        der = cert.public_bytes(Encoding.DER)
    except Exception:
        touch_certificate(cert)  # it reads public_bytes last, so it raises: its first error, as without the cache
        raise
    known = CERTIFICATES.get(der)
    if known is not None:
        return known
    touch_certificate(cert)
    return CERTIFICATES.put(der, cert)


def load_pem_certificates(data: bytes, what: str, *, max_count: int) -> tuple[x509.Certificate, ...]:
    """A PEM bundle in file order, each certificate fully decoded. Text between PEM blocks (and trailing NUL bytes,
    as in some DCAP quotes) is ignored. The decoded bundle is kept by its exact bytes (`PEM_BUNDLES`), and each
    certificate by its DER (`CERTIFICATES`, shared with `load_der_certificate`); the count bounds are checked on
    every call.

    Raises EvidenceError CERT_MALFORMED (naming `what`) when there is no certificate, more than `max_count`
    certificates, or one of them does not parse or decode (every time: failures are not kept)."""
    count = data.count(PEM_CERTIFICATE)
    if count > max_count:  # counted before parsing, so an oversized bundle costs no decoding work
        raise EvidenceError(
            "CERT_MALFORMED", f"{what}: too many certificates", expected=f"<= {max_count}", actual=str(count)
        )
    key = _key(data)
    certs = PEM_BUNDLES.get(key)
    if certs is None:
        try:
            certs = tuple(_touched(cert) for cert in x509.load_pem_x509_certificates(key))
        except Exception as exc:  # noqa: BLE001 - any failure to decode attacker-supplied bytes is CERT_MALFORMED
            raise _cert_malformed(what, exc) from None
        certs = PEM_BUNDLES.put(key, certs)
    if not certs or len(certs) > max_count:
        raise EvidenceError(
            "CERT_MALFORMED",
            f"{what}: wrong number of PEM certificates",
            expected=f"1..{max_count}",
            actual=str(len(certs)),
        )
    return certs


def touch_crl(crl: x509.CertificateRevocationList) -> None:
    """Read every lazily decoded part of `crl`, including every revoked entry and its extensions."""
    _ = (crl.last_update_utc, crl.next_update_utc)
    _touch_name(crl.issuer)
    _touch_extensions(crl.extensions)
    for entry in crl:
        _ = (entry.serial_number, entry.revocation_date_utc)
        _touch_extensions(entry.extensions)
    _ = (crl.signature_algorithm_oid, crl.signature_hash_algorithm, crl.signature_algorithm_parameters)
    _ = (crl.signature, crl.tbs_certlist_bytes, crl.public_bytes(Encoding.DER))


def load_crl(data: bytes, what: str = "CRL") -> x509.CertificateRevocationList:
    """A CRL in DER or PEM, fully decoded (RFC 5280 section 5.1), or the object decoded earlier from the same bytes
    (`CRLS`). Signature and validity window (thisUpdate, nextUpdate) are checked by the vendor-specific callers on
    every use: a kept CRL is only a parse, never a revocation decision. Raises EvidenceError CRL_MALFORMED (naming
    `what`; every time: failures are not kept)."""
    key = _key(data)
    cached = CRLS.get(key)
    if cached is not None:
        return cached
    try:
        crl = x509.load_pem_x509_crl(key) if _is_pem(key) else x509.load_der_x509_crl(key)
        touch_crl(crl)
    except Exception as exc:  # noqa: BLE001 - any failure to decode attacker-supplied bytes is CRL_MALFORMED
        raise EvidenceError(
            "CRL_MALFORMED",
            f"{what}: cannot parse CRL",
            expected="X.509 CRL (DER or PEM)",
            actual=str(exc)[:_ACTUAL_LIMIT] or type(exc).__name__,
        ) from None
    return CRLS.put(key, crl)


def pem_crl_der(pem: bytes) -> bytes:
    """The DER of a PEM CRL, for collateral bookkeeping (the PCS client): the CRL is parsed only as far as its
    outer structure, not decoded or verified (that is `load_crl`, at verification). Raises ValueError when it does
    not parse."""
    return x509.load_pem_x509_crl(pem).public_bytes(Encoding.DER)


def crl_next_update(der: bytes) -> datetime.datetime | None:
    """nextUpdate of a DER CRL (None without one), for cache bookkeeping only: nothing is verified. Raises
    ValueError when it does not parse."""
    return x509.load_der_x509_crl(der).next_update_utc


def pem_certificate_ders(data: bytes) -> list[bytes]:
    """Bookkeeping only, nothing verified: the DER of each PEM CERTIFICATE block (cryptography's loader refuses
    serial-0 certs in future releases)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return [cert.public_bytes(Encoding.DER) for cert in x509.load_pem_x509_certificates(data)]


def certificate_not_after(der: bytes) -> datetime.datetime:
    """Bookkeeping only (cache lifetimes), nothing verified: notAfter of a DER certificate, tolerating serial
    number 0 (every AMD VCEK and VLEK has it). Raises ValueError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            return x509.load_der_x509_certificate(der).not_valid_after_utc
        except ValueError:
            pass
    try:  # a future cryptography refusing serial 0: read the validity with asn1crypto instead
        value = asn1_x509.Certificate.load(der)["tbs_certificate"]["validity"]["not_after"].native
    except Exception as error:  # noqa: BLE001 - asn1crypto raises assorted types on garbage
        raise ValueError(f"not an X.509 certificate: {type(error).__name__}") from None
    if not isinstance(value, datetime.datetime):
        raise ValueError("certificate notAfter is not a time")
    return value.astimezone(datetime.UTC)
