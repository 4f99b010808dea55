"""The PCK certificate chain of a quote and the SGX extension of its leaf (Intel "SGX PCK Certificate and CRL
Profile", section "Intel SGX Extensions", OID 1.2.840.113741.1.13.1).

The extension value is a SEQUENCE of (OID, value) SEQUENCEs: .1 PPID OCTET STRING (16), .2 TCB = SEQUENCE of
(OID, value) with .2.1-.2.16 SGX TCB component SVNs and .2.17 PCESVN (INTEGER) and .2.18 CPUSVN (OCTET STRING
16), .3 PCE-ID OCTET STRING (2), .4 FMSPC OCTET STRING (6), .5 SGX Type ENUMERATED, and for certificates issued
by the Platform CA .6 platform instance ID OCTET STRING (16) and .7 configuration (SEQUENCE of BOOLEANs .7.1
dynamic platform, .7.2 cached keys, .7.3 SMT enabled). TCB, PCE-ID and FMSPC are required here; unknown sub-OIDs
are ignored (newer profiles add them); duplicates are rejected."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from asn1crypto import core
from cryptography import x509

from verifier.errors import EvidenceError
from verifier.trust.certs import load_pem_certificates

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
MAX_CHAIN_CERTS = 5
_CODE = "TDX_PCK_EXTENSION_INVALID"
_O = SGX_EXTENSION_OID


@dataclass(frozen=True)
class PckInfo:
    fmspc: bytes  # 6 bytes
    pce_id: bytes  # 2 bytes
    cpusvn: bytes  # 16 bytes, raw CPUSVN (.2.18)
    tcb_components: tuple[int, ...]  # the 16 SGX TCB component SVNs (.2.1 - .2.16)
    pcesvn: int
    ppid: bytes | None
    sgx_type: int | None  # 0 Standard, 1 Scalable, 2 Scalable with Integrity
    platform_instance_id: bytes | None
    dynamic_platform: bool | None = None
    cached_keys: bool | None = None
    smt_enabled: bool | None = None


def pck_chain(pem: bytes) -> list[x509.Certificate]:
    """The quote's PEM chain in quote order (leaf, PCK Platform/Processor CA, Root CA), each certificate fully
    decoded by the shared loader. Trailing NUL bytes (as in dcap-qvl's sample quotes) are tolerated. Raises
    EvidenceError CERT_MALFORMED (also for more than MAX_CHAIN_CERTS certificates)."""
    return list(load_pem_certificates(pem, "the quote's PCK certificate chain", max_count=MAX_CHAIN_CERTS))


def _invalid(message: str, expected: str, actual: str) -> EvidenceError:
    return EvidenceError(_CODE, f"PCK certificate SGX extension: {message}", expected=expected, actual=actual)


def _pairs(value: core.Asn1Value, where: str) -> dict[str, core.Asn1Value]:
    if not isinstance(value, core.Sequence):
        raise _invalid(f"{where} is not a SEQUENCE", "SEQUENCE", type(value).__name__)
    out: dict[str, core.Asn1Value] = {}
    for i in range(len(value)):
        item = value[i]
        if not isinstance(item, core.Sequence) or len(item) != 2 or not isinstance(item[0], core.ObjectIdentifier):
            raise _invalid(
                f"entry {i} of {where} is not an (OID, value) pair", "SEQUENCE { OID, value }", type(item).__name__
            )
        oid = item[0].dotted
        if oid in out:
            raise _invalid(f"{oid} appears twice", "once", "twice")
        out[oid] = item[1]
    return out


def _opt(
    pairs: dict[str, core.Asn1Value], oid: str, kind: type[core.Asn1Value], name: str, size: int | None = None
) -> core.Asn1Value | None:
    value = pairs.get(oid)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise _invalid(f"{name} ({oid}) has the wrong type", kind.__name__, type(value).__name__)
    if size is not None and len(value.native) != size:
        raise _invalid(f"{name} ({oid}) has the wrong length", f"{size} bytes", f"{len(value.native)} bytes")
    return value


def _req(
    pairs: dict[str, core.Asn1Value], oid: str, kind: type[core.Asn1Value], name: str, size: int | None = None
) -> core.Asn1Value:
    value = _opt(pairs, oid, kind, name, size)
    if value is None:
        raise _invalid(f"{name} ({oid}) is missing", f"{name} {kind.__name__}", "absent")
    return value


def _svn(value: core.Asn1Value, name: str, limit: int) -> int:
    number = int(value.native)
    if not 0 <= number < limit:
        raise _invalid(f"{name} is out of range", f"0..{limit - 1}", str(number))
    return number


def _octets(value: core.Asn1Value | None) -> bytes | None:
    return None if value is None else bytes(value.native)


def _flag(value: core.Asn1Value | None) -> bool | None:
    return None if value is None else bool(value.native)


def pck_info(cert: x509.Certificate) -> PckInfo:
    """FMSPC, PCE-ID, CPUSVN, TCB components and PCESVN of a PCK leaf. Raises EvidenceError
    TDX_PCK_EXTENSION_INVALID when the extension is missing, not DER, or a required part is absent or ill-typed."""
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(_O))
    except x509.ExtensionNotFound:
        raise _invalid("the certificate has no SGX extension", _O, "absent") from None
    except ValueError as exc:
        raise _invalid("the certificate's extensions do not parse", _O, str(exc)[:200]) from None
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        raise _invalid("unexpected extension type", "DER bytes", type(ext.value).__name__)
    try:
        return _parse(ext.value.value)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:  # asn1crypto decodes lazily
        raise _invalid("the extension is not valid DER", "DER", str(exc)[:200]) from None


@functools.lru_cache(maxsize=512)
def _parse(der: bytes) -> PckInfo:
    """Parse the extension value (a pure function of its bytes, so cached: the same PCK attests many times)."""
    top = _pairs(core.load(der, strict=True), "the SGX extension")
    tcb = _pairs(_req(top, f"{_O}.2", core.Sequence, "TCB"), "TCB")
    components = tuple(
        _svn(_req(tcb, f"{_O}.2.{i}", core.Integer, f"TCB component {i}"), f"TCB component {i}", 256)
        for i in range(1, 17)
    )
    config = _opt(top, f"{_O}.7", core.Sequence, "configuration")
    flags = _pairs(config, "configuration") if config is not None else {}
    sgx_type = _opt(top, f"{_O}.5", core.Enumerated, "SGX type")
    return PckInfo(
        fmspc=bytes(_req(top, f"{_O}.4", core.OctetString, "FMSPC", 6).native),
        pce_id=bytes(_req(top, f"{_O}.3", core.OctetString, "PCE-ID", 2).native),
        cpusvn=bytes(_req(tcb, f"{_O}.2.18", core.OctetString, "CPUSVN", 16).native),
        tcb_components=components,
        pcesvn=_svn(_req(tcb, f"{_O}.2.17", core.Integer, "PCESVN"), "PCESVN", 1 << 16),
        ppid=_octets(_opt(top, f"{_O}.1", core.OctetString, "PPID", 16)),
        sgx_type=None if sgx_type is None else int(sgx_type),
        platform_instance_id=_octets(_opt(top, f"{_O}.6", core.OctetString, "platform instance ID", 16)),
        dynamic_platform=_flag(_opt(flags, f"{_O}.7.1", core.Boolean, "dynamic platform")),
        cached_keys=_flag(_opt(flags, f"{_O}.7.2", core.Boolean, "cached keys")),
        smt_enabled=_flag(_opt(flags, f"{_O}.7.3", core.Boolean, "SMT enabled")),
    )
