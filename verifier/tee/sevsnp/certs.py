"""AMD SEV-SNP certificates: loading, classification by subject CN and the KDS extensions.

Names and extensions follow AMD's "Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface
Specification" (pub. 57230): ARK "ARK-<product>" (self-signed root), ASK "SEV-<product>" (issues VCEKs), ASVK
"SEV-VLEK-<product>" (issues VLEKs), VCEK "SEV-VCEK", VLEK "SEV-VLEK". VCEK/VLEK extensions live under
1.3.6.1.4.1.3704.1: SPLs are DER INTEGERs, productName an IA5String, hwID the raw chip id (64 bytes; 8 on Turin).

Every real VCEK/VLEK has serial number 0, which RFC 5280 forbids; `cryptography` (<= 50) parses it with a
CryptographyDeprecationWarning (silenced for exactly that message in verifier.trust.certs). asn1crypto parses
such certificates too (see tests/unit/tee/sevsnp/test_snp_certs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from asn1crypto import core
from cryptography import x509
from cryptography.x509.oid import NameOID

from verifier.errors import EvidenceError
from verifier.identity_memo import IdentityMemo
from verifier.trust import certs as trust_certs

KDS_OID = "1.3.6.1.4.1.3704.1"
OID_STRUCT_VERSION = f"{KDS_OID}.1"
OID_PRODUCT_NAME = f"{KDS_OID}.2"
OID_BL_SPL = f"{KDS_OID}.3.1"
OID_TEE_SPL = f"{KDS_OID}.3.2"
OID_SNP_SPL = f"{KDS_OID}.3.3"
OID_UCODE_SPL = f"{KDS_OID}.3.8"
OID_FMC_SPL = f"{KDS_OID}.3.9"
OID_HWID = f"{KDS_OID}.4"
HWID_SIZES = (64, 8)  # 8 bytes on Turin

_DECODED: IdentityMemo[KdsExtensions] = IdentityMemo()
_SPL_OIDS = {
    "struct_version": OID_STRUCT_VERSION,
    "bl_spl": OID_BL_SPL,
    "tee_spl": OID_TEE_SPL,
    "snp_spl": OID_SNP_SPL,
    "ucode_spl": OID_UCODE_SPL,
    "fmc_spl": OID_FMC_SPL,
}

KINDS = ("ark", "ask", "asvk", "vcek", "vlek")

MAX_BUNDLE_CERTS = 8  # a KDS cert_chain holds two (ASK or ASVK, then ARK); a few more are tolerated


def load_certificate(data: bytes, what: str) -> x509.Certificate:
    """One certificate, PEM or DER, fully decoded by the shared loader (verifier.trust.certs). Raises EvidenceError
    CERT_MALFORMED naming `what`."""
    return trust_certs.load_certificate(data, what)


def load_certificates(data: bytes, what: str = "PEM certificate bundle") -> list[x509.Certificate]:
    """A PEM bundle such as KDS `cert_chain` (ASK or ASVK, then ARK), in file order. Raises EvidenceError
    CERT_MALFORMED."""
    return list(trust_certs.load_pem_certificates(data, what, max_count=MAX_BUNDLE_CERTS))


def common_name(name: x509.Name) -> str:
    """The single subject/issuer CN (pub. 57230 names the AMD certificates by CN), or "" when there is none or more
    than one; bytes values are decoded as UTF-8 with replacement. Never raises."""
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attrs) != 1:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def classify(cert: x509.Certificate) -> str:
    """ "ark", "ask", "asvk", "vcek" or "vlek" from the subject CN (pub. 57230); EvidenceError otherwise."""
    cn = common_name(cert.subject)
    if cn == "SEV-VCEK":
        return "vcek"
    if cn == "SEV-VLEK":
        return "vlek"
    if cn.startswith("ARK-") and len(cn) > 4:
        return "ark"
    if cn.startswith("SEV-VLEK-"):
        if len(cn) > 9:
            return "asvk"
    elif cn.startswith("SEV-") and len(cn) > 4:
        return "ask"
    raise EvidenceError(
        "SNP_CERT_UNKNOWN",
        "not an AMD SEV-SNP certificate subject",
        expected="ARK-*, SEV-*, SEV-VLEK-*, SEV-VCEK or SEV-VLEK",
        actual=cn or "no CN",
    )


@dataclass(frozen=True)
class KdsExtensions:
    struct_version: int | None
    product_name: str | None
    bl_spl: int | None
    tee_spl: int | None
    snp_spl: int | None
    ucode_spl: int | None
    fmc_spl: int | None
    hwid: bytes | None


def _invalid(oid: str, reason: str, value: bytes) -> EvidenceError:
    return EvidenceError(
        "SNP_CERT_EXTENSION_INVALID", f"KDS extension {oid}: {reason}", expected=reason, actual=value.hex()
    )


def _integer(oid: str, value: bytes) -> int:
    try:
        number = core.Integer.load(value, strict=True).native
    except (ValueError, TypeError) as exc:
        raise _invalid(oid, f"not a DER INTEGER ({exc})", value) from None
    if not isinstance(number, int) or core.Integer(number).dump() != value:
        raise _invalid(oid, "not a minimal DER INTEGER", value)
    if not 0 <= number <= 255:
        raise _invalid(oid, "an SPL is one byte of TCB_VERSION (0..255)", value)
    return number


def kds_extensions(cert: x509.Certificate) -> KdsExtensions:
    """Decode the KDS extensions of a VCEK/VLEK (pub. 57230, "VCEK Certificate Extensions"), once per certificate
    object (a pure function of its bytes; certificates are decoded once per input). Raises EvidenceError
    SNP_CERT_EXTENSION_INVALID (every time: failures are not kept)."""
    return _DECODED.get(cert, None, lambda: _decode_kds_extensions(cert))


def _decode_kds_extensions(cert: x509.Certificate) -> KdsExtensions:
    raw: dict[str, bytes] = {}
    try:
        for ext in cert.extensions:
            oid = ext.oid.dotted_string
            if oid.startswith(KDS_OID + ".") and isinstance(ext.value, x509.UnrecognizedExtension):
                raw[oid] = ext.value.value
    except ValueError as exc:
        raise EvidenceError(
            "SNP_CERT_EXTENSION_INVALID", "undecodable certificate extensions", actual=str(exc)
        ) from None
    spl = {name: _integer(oid, raw[oid]) if oid in raw else None for name, oid in _SPL_OIDS.items()}
    product_name: str | None = None
    if (product := raw.get(OID_PRODUCT_NAME)) is not None:
        try:
            product_name = str(core.IA5String.load(product, strict=True).native)
        except (ValueError, TypeError) as exc:
            raise _invalid(OID_PRODUCT_NAME, f"not a DER IA5String ({exc})", product) from None
        if not product_name:
            raise _invalid(OID_PRODUCT_NAME, "empty productName", product)
    hwid = raw.get(OID_HWID)
    if hwid is not None and len(hwid) not in HWID_SIZES:
        raise _invalid(OID_HWID, "hwID is 64 bytes (8 on Turin)", hwid)
    return KdsExtensions(
        struct_version=spl["struct_version"],
        product_name=product_name,
        bl_spl=spl["bl_spl"],
        tee_spl=spl["tee_spl"],
        snp_spl=spl["snp_spl"],
        ucode_spl=spl["ucode_spl"],
        fmc_spl=spl["fmc_spl"],
        hwid=hwid,
    )


@dataclass(frozen=True)
class SnpCertificates:
    """The certificates that came with a report (or from KDS); any may be missing."""

    ark: x509.Certificate | None = None
    ask: x509.Certificate | None = None
    asvk: x509.Certificate | None = None
    vcek: x509.Certificate | None = None
    vlek: x509.Certificate | None = None

    def merged(self, other: SnpCertificates) -> SnpCertificates:
        """These certificates, with missing ones taken from `other`."""
        return SnpCertificates(**{f.name: getattr(self, f.name) or getattr(other, f.name) for f in fields(self)})

    @classmethod
    def from_list(cls, certs: list[x509.Certificate]) -> SnpCertificates:
        """Place each certificate by `classify`; two of one kind raise SNP_CERT_DUPLICATE."""
        slots: dict[str, x509.Certificate] = {}
        for cert in certs:
            kind = classify(cert)
            if kind in slots and slots[kind] != cert:
                raise EvidenceError(
                    "SNP_CERT_DUPLICATE", f"two different {kind.upper()} certificates", expected="one", actual="2"
                )
            slots[kind] = cert
        return cls(**slots)
