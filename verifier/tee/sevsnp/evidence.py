"""The SEV-SNP verifier behind the TEE seam: parse, gather collateral, verify (no policy).

Collateral order (first found wins): the request's files (`vcek.pem|der`, `vlek.pem|der`, `ask.pem`, `asvk.pem`,
`ark.pem`, `cert_chain.pem`, an extended-report certificate table `cert_table.bin`, `crl.der`), the configured
trust-anchor directory (ARK/ASK/ASVK), then the collateral source (AMD KDS through the database cache; offline
means none). VLEKs cannot be downloaded and must come with the evidence."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from cryptography import x509

from ...collateral.base import CollateralUnavailableError
from ...collateral.kds import cert_chain_key, crl_key, vcek_key
from ...errors import EvidenceError, ParseError
from ..base import VerifiedEvidence, VerifyContext
from .abi import SIGNING_KEY_VCEK, SIGNING_KEY_VLEK, AttestationReport, parse_report
from .certs import SnpCertificates, classify, common_name, kds_extensions, load_certificate, load_certificates
from .certtable import parse_cert_table
from .claims import claims as report_claims
from .crl import verify_crl
from .tcb import Product, decode_tcb, product_from_cpuid, product_from_name
from .verify import verify_report

log = logging.getLogger(__name__)

CERT_FILES = ("vcek.pem", "vcek.der", "vlek.pem", "vlek.der", "ask.pem", "asvk.pem", "ark.pem", "cert_chain.pem")
CERT_TABLE_FILES = ("cert_table.bin", "certs.bin")
CRL_FILES = ("crl.der", "crl.pem")


class SnpVerifier:
    tee = "snp"

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
        try:
            report = parse_report(evidence)
        except ParseError as exc:
            return VerifiedEvidence(self.tee, None, {}, exc)
        product = product_from_cpuid(report.cpuid_fam_id, report.cpuid_mod_id)
        try:
            certs = _from_request(ctx.collateral)
        except (EvidenceError, ParseError) as exc:
            return VerifiedEvidence(self.tee, report, report_claims(report, product), exc)
        signer = certs.vlek if report.signing_key == SIGNING_KEY_VLEK else certs.vcek
        if product is None and signer is not None:
            product = product_from_name(_product_name(signer) or "")
        certs = _complete(report, certs, product, ctx)
        details: dict[str, Any] = {"crl": "off"}
        crl = _crl(report, certs, product, ctx, details) if ctx.check_crl and product is not None else None
        try:
            verified = verify_report(report, certs, ctx.anchors, ctx.at, product=product, crl=crl)
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, report, report_claims(report, product), exc, details)
        claims = report_claims(report, verified.product)
        claims["signer"] = {"kind": verified.signer_kind, "subject": verified.signer.subject.rfc4514_string(),
                            "not_after": verified.signer.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")}
        details["product"] = verified.product.value
        return VerifiedEvidence(self.tee, report, claims, None, details)


def _from_request(files: Mapping[str, bytes]) -> SnpCertificates:
    found: dict[str, x509.Certificate] = {}
    for name in CERT_FILES:
        if name in files:
            for cert in _load_any(files[name], name):
                found.setdefault(classify(cert), cert)
    for name in CERT_TABLE_FILES:
        if name in files:
            for kind, der in parse_cert_table(files[name]).items():
                if kind in ("vcek", "vlek", "ask", "asvk", "ark"):
                    for cert in _load_any(der, f"{name}:{kind}"):
                        found.setdefault(classify(cert), cert)
    return SnpCertificates(**found)


def _complete(report: AttestationReport, certs: SnpCertificates, product: Product | None,
              ctx: VerifyContext) -> SnpCertificates:
    """Fill the gaps from the trust-anchor directory, then from the collateral source."""
    from_anchors: dict[str, x509.Certificate] = {}
    for cert in ctx.anchors.certificates if product is not None else ():
        kind = _kind(cert)
        if kind in ("ark", "ask", "asvk") and product is not None and _cn(cert).endswith(product.value):
            from_anchors.setdefault(kind, cert)
    certs = certs.merged(SnpCertificates(**from_anchors))
    vcek_signed = report.signing_key == SIGNING_KEY_VCEK
    if vcek_signed and certs.vcek is None and product is not None:
        tcb = decode_tcb(report.reported_tcb, product, field="REPORTED_TCB")
        item = ctx.source.fetch(vcek_key(product, report.chip_id, tcb), at=ctx.at)
        certs = certs.merged(SnpCertificates(vcek=load_certificate(item.data, "VCEK from KDS")))
    if vcek_signed and certs.vcek is None:
        raise CollateralUnavailableError("COLLATERAL_VCEK_MISSING", "no VCEK in the request and the product of "
                                         "this v2 report is unknown: send vcek.pem with the evidence")
    needs = "ask" if vcek_signed else "asvk"
    if getattr(certs, needs) is None and product is not None:
        item = ctx.source.fetch(cert_chain_key(product, "vcek" if vcek_signed else "vlek"), at=ctx.at)
        chain = {classify(c): c for c in load_certificates(item.data)}
        certs = certs.merged(SnpCertificates(**chain))
    return certs


def _crl(report: AttestationReport, certs: SnpCertificates, product: Product, ctx: VerifyContext,
         details: dict[str, Any]) -> x509.CertificateRevocationList | None:
    """The ARK-signed CRL of the product, verified; on failure record why (policy decides)."""
    signer: Literal["vcek", "vlek"] = "vlek" if report.signing_key == SIGNING_KEY_VLEK else "vcek"
    ark = next((c for c in [certs.ark, *ctx.anchors.roots("amd-ark")]
                if c is not None and ctx.anchors.is_pinned("amd-ark", c) and _cn(c) == f"ARK-{product.value}"), None)
    try:
        data = next((ctx.collateral[n] for n in CRL_FILES if n in ctx.collateral), None)
        if data is None:
            data = ctx.source.fetch(crl_key(product, signer), at=ctx.at).data
        if ark is None:
            raise EvidenceError("CHAIN_ROOT_UNTRUSTED", f"no pinned ARK-{product.value} to check the CRL with")
        crl = verify_crl(data, ark, ctx.at)
    except (CollateralUnavailableError, EvidenceError) as exc:
        details.update(crl="unavailable", crl_reason=exc.code)
        log.warning("SNP CRL unavailable: %s", exc.code)
        return None
    details["crl"] = "checked"
    return crl


def _load_any(data: bytes, what: str) -> list[x509.Certificate]:
    if data.lstrip().startswith(b"-----BEGIN"):
        return load_certificates(data)
    return [load_certificate(data, what)]


def _cn(cert: x509.Certificate) -> str:
    return common_name(cert.subject)


def _kind(cert: x509.Certificate) -> str | None:
    try:
        return classify(cert)
    except EvidenceError:
        return None


def _product_name(cert: x509.Certificate) -> str | None:
    try:
        return kds_extensions(cert).product_name
    except EvidenceError:
        return None
