"""Verify an SEV-SNP ATTESTATION_REPORT against its VCEK/VLEK chain to a pinned ARK.

Steps (SEV-SNP Firmware ABI spec pub. 56860 "ATTESTATION_REPORT"; AMD "VCEK Certificate and KDS Interface
Specification" pub. 57230), each failing with its own EvidenceError code:

1. signer kind from SIGNING_KEY (0 VCEK, 1 VLEK, 7 none) and its certificate;
2. product: the argument, else CPUID_FAM_ID/MOD_ID (v3+), else the signer's productName; all present must agree;
3. the ARK: pinned ("amd-ark") and named ARK-<product>;
4. chain VCEK <- ASK <- ARK or VLEK <- ASVK <- ARK (pub. 57230 "Certificate Chain"), plus the CRL when given;
5. bindings: the signer's SPL extensions equal REPORTED_TCB; a VCEK's hwID equals CHIP_ID unless MASK_CHIP_KEY;
6. only then the report signature: ECDSA P-384 / SHA-384 over bytes 0x000..0x29F, R and S little-endian.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.errors import EvidenceError
from verifier.tee.sevsnp.abi import SIGNING_KEY_NONE, SIGNING_KEY_VCEK, SIGNING_KEY_VLEK, AttestationReport
from verifier.tee.sevsnp.certs import KdsExtensions, SnpCertificates, classify, common_name, kds_extensions
from verifier.tee.sevsnp.crl import check_crl, revoked
from verifier.tee.sevsnp.tcb import Product, decode_tcb, product_from_cpuid, product_from_name
from verifier.trust.anchors import TrustAnchors, fingerprint
from verifier.trust.chain import VerifiedLinks, validate_chain
from verifier.trust.ecdsa import verify_rs
from verifier.trust.public_keys import public_key

VENDOR = "amd-ark"
TURIN_HWID_SIZE = 8


@dataclass(frozen=True)
class SnpVerified:
    product: Product
    signer_kind: str  # "vcek" | "vlek"
    signer: x509.Certificate
    extensions: KdsExtensions
    chain: list[x509.Certificate]  # signer, ASK/ASVK, ARK


def _signer(report: AttestationReport, certs: SnpCertificates) -> tuple[str, x509.Certificate]:
    """Step 1 (ABI spec, signer info at 0x48 bits 4:2)."""
    if report.signing_key == SIGNING_KEY_NONE:
        raise EvidenceError(
            "SNP_SIGNING_KEY_NONE",
            "the report is unsigned (SIGNING_KEY = 7)",
            expected="VCEK (0) or VLEK (1)",
            actual="none (7)",
        )
    kind = {SIGNING_KEY_VCEK: "vcek", SIGNING_KEY_VLEK: "vlek"}[report.signing_key]
    cert = certs.vcek if kind == "vcek" else certs.vlek
    if cert is None:
        raise EvidenceError(
            "SNP_SIGNER_CERT_MISSING",
            f"the report is signed by a {kind.upper()} but none was given",
            expected=kind.upper(),
            actual="missing",
        )
    if classify(cert) != kind:
        raise EvidenceError(
            "SNP_SIGNER_CHAIN_MISMATCH",
            f"the {kind.upper()} certificate has another subject",
            expected="SEV-VCEK" if kind == "vcek" else "SEV-VLEK",
            actual=common_name(cert.subject),
        )
    return kind, cert


def _product(report: AttestationReport, ext: KdsExtensions, given: Product | None) -> Product:
    """Step 2 (pub. 57230 productName; ABI spec CPUID_FAM_ID/CPUID_MOD_ID, report v3+)."""
    from_cpuid = product_from_cpuid(report.cpuid_fam_id, report.cpuid_mod_id)
    from_name = product_from_name(ext.product_name) if ext.product_name is not None else None
    product = given or from_cpuid or from_name
    if product is None:
        raise EvidenceError(
            "SNP_PRODUCT_UNKNOWN",
            "cannot tell the product (no argument, CPUID or productName)",
            expected="Milan|Genoa|Turin",
            actual=ext.product_name or "unknown",
        )
    if ext.product_name is not None and from_name != product:
        raise EvidenceError(
            "SNP_PRODUCT_MISMATCH",
            "the signer's productName is for another product",
            expected=product.value,
            actual=ext.product_name,
        )
    if from_cpuid is not None and from_cpuid != product:
        raise EvidenceError(
            "SNP_PRODUCT_MISMATCH",
            "the report's CPUID is for another product",
            expected=product.value,
            actual=from_cpuid.value,
        )
    return product


def _ark(certs: SnpCertificates, anchors: TrustAnchors, product: Product) -> x509.Certificate:
    """Step 3: the ARK is a trust root only when its SHA-256 is pinned (trust-anchors README)."""
    wanted = f"ARK-{product.value}"
    if certs.ark is not None:
        ark = certs.ark
        if not anchors.root_for(VENDOR, ark, None):  # a given ARK must be pinned itself: no anchor stands in
            raise EvidenceError(
                "CHAIN_ROOT_UNTRUSTED",
                "the ARK is not a pinned AMD root",
                expected="pinned amd-ark fingerprint",
                actual=fingerprint(ark),
            )
    else:
        found = anchors.root_for(VENDOR, None, lambda c: common_name(c.subject) == wanted)
        if not found:
            raise EvidenceError(
                "CHAIN_ROOT_UNTRUSTED", f"no pinned {wanted} among the trust anchors", expected=wanted, actual="missing"
            )
        ark = found[0]
    if common_name(ark.subject) != wanted:
        raise EvidenceError(
            "SNP_PRODUCT_MISMATCH", "the ARK is for another product", expected=wanted, actual=common_name(ark.subject)
        )
    return ark


def _intermediate(
    kind: str, signer: x509.Certificate, certs: SnpCertificates, anchors: TrustAnchors, product: Product
) -> x509.Certificate:
    """Step 4, by name before any signature: a VCEK is issued by SEV-<product> (ASK), a VLEK by
    SEV-VLEK-<product> (ASVK); a missing ASK/ASVK may come from the trust-anchor files."""
    wanted = f"SEV-{product.value}" if kind == "vcek" else f"SEV-VLEK-{product.value}"
    issuer_cn = common_name(signer.issuer)
    if issuer_cn != wanted:
        raise EvidenceError(
            "SNP_SIGNER_CHAIN_MISMATCH",
            f"the {kind.upper()} is not issued by {wanted}",
            expected=wanted,
            actual=issuer_cn,
        )
    given = certs.ask if kind == "vcek" else certs.asvk
    if given is not None:
        if common_name(given.subject) != wanted:
            raise EvidenceError(
                "SNP_SIGNER_CHAIN_MISMATCH",
                f"the intermediate for a {kind.upper()} is not {wanted}",
                expected=wanted,
                actual=common_name(given.subject),
            )
        return given
    found = [c for c in anchors.certificates if c.subject == signer.issuer]
    if not found:
        raise EvidenceError(
            "SNP_INTERMEDIATE_MISSING",
            f"no {wanted} certificate given or among the anchors",
            expected=wanted,
            actual="missing",
        )
    return found[0]


def _check_tcb(report: AttestationReport, ext: KdsExtensions, product: Product) -> None:
    """Step 5a (pub. 57230): the VCEK/VLEK is issued for REPORTED_TCB, component by component."""
    tcb = decode_tcb(report.reported_tcb, product, field="REPORTED_TCB")
    pairs: dict[str, tuple[int | None, int | None]] = {
        "blSPL": (ext.bl_spl, tcb.bootloader), "teeSPL": (ext.tee_spl, tcb.tee),
        "snpSPL": (ext.snp_spl, tcb.snp), "ucodeSPL": (ext.ucode_spl, tcb.microcode),
    }  # fmt: skip
    if product is Product.TURIN:
        pairs = {"fmcSPL": (ext.fmc_spl, tcb.fmc), **pairs}
    diff = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
    if diff:
        raise EvidenceError(
            "SNP_TCB_MISMATCH",
            f"signer TCB extensions differ from REPORTED_TCB: {', '.join(diff)}",
            expected=", ".join(f"{n}={'missing' if c is None else c}" for n, (c, _) in diff.items()),
            actual=", ".join(f"{n}={r}" for n, (_, r) in diff.items()),
        )


def _check_chip(report: AttestationReport, ext: KdsExtensions, product: Product) -> None:
    """Step 5b (pub. 57230 hwID): a VCEK's hwID is CHIP_ID; on Turin it is 8 bytes and the rest of CHIP_ID zero.
    MASK_CHIP_KEY reports carry no chip id, so they cannot be bound to a chip."""
    if report.mask_chip_key:
        return
    size = TURIN_HWID_SIZE if product is Product.TURIN else len(report.chip_id)
    hwid = ext.hwid
    if hwid is None or len(hwid) != size or hwid != report.chip_id[:size] or any(report.chip_id[size:]):
        raise EvidenceError(
            "SNP_CHIP_ID_MISMATCH",
            "the VCEK hwID does not match the report's CHIP_ID",
            expected="missing" if hwid is None else hwid.hex(),
            actual=report.chip_id.hex(),
        )


def _check_signature(report: AttestationReport, signer: x509.Certificate) -> None:
    """Step 6 (ABI spec "ECDSA signature format"): P-384, SHA-384, R and S little-endian in the report.

    High-s signatures are accepted, as by every ECDSA check here: AMD firmware does not normalize s (most of the
    genuine reports in the vectors are high-s) and malleability is harmless (verifier/trust/ecdsa.py)."""
    key = public_key(signer)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        actual = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise EvidenceError("SNP_KEY_TYPE", "the signer key is not ECDSA P-384", expected="secp384r1", actual=actual)
    r, s = report.signature_rs()
    if not verify_rs(key, r, s, report.signed_bytes(), hashes.SHA384()):
        raise EvidenceError(
            "SNP_SIGNATURE_INVALID",
            "the report signature does not verify with the signer key",
            expected=f"ECDSA P-384 by {fingerprint(signer)}",
            actual=(report.signature_r + report.signature_s).hex(),
        )


def verify_report(
    report: AttestationReport,
    certs: SnpCertificates,
    anchors: TrustAnchors,
    at: datetime.datetime,
    *,
    product: Product | None = None,
    crl: x509.CertificateRevocationList | None = None,
    links: VerifiedLinks | None = None,
) -> SnpVerified:
    """Run steps 1-6 (module docstring) at time `at`; raises EvidenceError with the first failure. Signatures
    that verified are remembered in `links` (the verifier's cache)."""
    kind, signer = _signer(report, certs)
    extensions = kds_extensions(signer)
    found = _product(report, extensions, product)
    ark = _ark(certs, anchors, found)
    intermediate = _intermediate(kind, signer, certs, anchors, found)
    chain = validate_chain(signer, [intermediate], ark, at, links)
    if crl is not None:
        check_crl(crl, ark, at, links)
        for cert in (intermediate, signer):
            if revoked(crl, cert):
                raise EvidenceError(
                    "SNP_CERT_REVOKED",
                    f"{common_name(cert.subject)} is revoked by the ARK's CRL",
                    expected="not revoked",
                    actual=f"serial {cert.serial_number}",
                )
    _check_tcb(report, extensions, found)
    if kind == "vcek":
        _check_chip(report, extensions, found)
    _check_signature(report, signer)
    return SnpVerified(product=found, signer_kind=kind, signer=signer, extensions=extensions, chain=chain)
