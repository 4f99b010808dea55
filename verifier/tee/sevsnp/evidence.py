"""The SEV-SNP verifier behind the TEE seam: parse, gather collateral, verify (no policy).

Collateral order (first found wins): the request's files (`vcek.pem|der`, `vlek.pem|der`, `ask.pem`, `asvk.pem`,
`ark.pem`, `cert_chain.pem`, an extended-report certificate table `cert_table.bin`, `crl.der`), the configured
trust-anchor directory (ARK/ASK/ASVK), then the collateral source (AMD KDS through the database cache; offline
means none). VLEKs cannot be downloaded and must come with the evidence.

Revocation is checked by default (`VerifyContext.check_crl`): the product's ARK-signed CRL from the request and
from the source, the newer deciding (`revocation.py`). Facts for appraisal go to `VerifiedEvidence.details`:
"revocation" (and its older name "crl"): "checked" | "off" | "unavailable" (then "crl_reason" holds the code);
"collateral": what decided, a list of {"item": "amd.crl" | "amd.vcek" | "amd.vlek" | "amd.cert_chain", "number",
"issued", "next_update", "source": "request" | "cache" | "vendor" | "anchors"}; "collateral_superseded": a list of
{"item", "request": {"number", "issued"}, "used": {"number", "issued"}} for request collateral that lost to newer;
"appraised_at": the appraisal time (RFC 3339).

A source item that does not verify against the pinned trust anchors on its own (a VCEK not issued by a pinned
ASK, a cert_chain whose ASK/ASVK is not signed by the pinned ARK, a CRL not signed by it, an item that does not
parse) is reported to the source (`collateral.base.reject`), so a cache drops it and the vendor is asked again.
Failures that depend on the request (its own certificates, the report signature) never evict anything."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from cryptography import x509

from ...collateral.base import CollateralItem, CollateralUnavailableError, reject
from ...collateral.kds import cert_chain_key, crl_key, vcek_key
from ...errors import EvidenceError, ParseError
from ...trust.chain import VerifiedLinks, check_issued_by, check_validity, validate_chain
from ..base import VerifiedEvidence, VerifyContext, collateral_from_details
from .abi import SIGNING_KEY_VCEK, SIGNING_KEY_VLEK, AttestationReport, parse_report
from .certs import SnpCertificates, classify, common_name, kds_extensions, load_certificate, load_certificates
from .certtable import parse_cert_table
from .claims import claims as report_claims
from .crl import verify_crl
from .revocation import choose_crl, source_name
from .tcb import Product, decode_tcb, product_from_cpuid, product_from_name
from .verify import verify_report

log = logging.getLogger(__name__)

CERT_FILES = ("vcek.pem", "vcek.der", "vlek.pem", "vlek.der", "ask.pem", "asvk.pem", "ark.pem", "cert_chain.pem")
CERT_TABLE_FILES = ("cert_table.bin", "certs.bin")
CRL_FILES = ("crl.der", "crl.pem")
_T = TypeVar("_T")


class SnpVerifier:
    tee = "snp"

    def __init__(self, links: VerifiedLinks | None = None) -> None:
        """`links`: the cache of verified signatures (the composition root may share one); a fresh one by default."""
        self.links = links if links is not None else VerifiedLinks()

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
        """Steps 2-6 (module docstring); the typed facts are those of `details` ("revocation", "collateral").
        Never raises for bad evidence: the first error is the result's `failure`."""
        result = self._verify(evidence, ctx)
        revocation = result.details.get("revocation")
        return dataclasses.replace(
            result,
            revocation=revocation if isinstance(revocation, str) else None,
            collateral=collateral_from_details(result.details.get("collateral")),
        )

    def _verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
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
        origin = {kind: "request" for kind in _KINDS if getattr(certs, kind) is not None}
        fetched: dict[str, CollateralItem] = {}
        try:
            certs = _complete(report, certs, product, ctx, origin, fetched)
        except EvidenceError as exc:  # a served item that does not parse (rejected already): as TDX, the failure
            return VerifiedEvidence(self.tee, report, report_claims(report, product), exc)
        details: dict[str, Any] = {"appraised_at": _rfc3339(ctx.at)}
        crl = _revocation(report, certs, product, ctx, details, self.links)
        try:
            verified = verify_report(report, certs, ctx.anchors, ctx.at, product=product, crl=crl, links=self.links)
        except EvidenceError as exc:
            _reject_unverifiable(fetched, product, ctx, self.links)
            return VerifiedEvidence(self.tee, report, report_claims(report, product), exc, details)
        details["collateral"] = [
            *_certificate_entries(verified.chain, verified.signer_kind, origin),
            *details.get("collateral", ()),
        ]
        claims = report_claims(report, verified.product)
        claims["signer"] = {
            "kind": verified.signer_kind,
            "subject": verified.signer.subject.rfc4514_string(),
            "not_after": verified.signer.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        details["product"] = verified.product.value
        return VerifiedEvidence(self.tee, report, claims, None, details)


_KINDS = ("vcek", "vlek", "ask", "asvk", "ark")


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


def _complete(
    report: AttestationReport,
    certs: SnpCertificates,
    product: Product | None,
    ctx: VerifyContext,
    origin: dict[str, str],
    fetched: dict[str, CollateralItem],
) -> SnpCertificates:
    """Fill the gaps from the trust-anchor directory, then from the collateral source; `origin` records where
    each certificate kind came from, `fetched` the source items used ("vcek", "cert_chain"). An item that does
    not parse is rejected (`reject`) and its EvidenceError raised."""
    from_anchors: dict[str, x509.Certificate] = {}
    for cert in ctx.anchors.certificates if product is not None else ():
        kind = _kind(cert)
        if kind in ("ark", "ask", "asvk") and product is not None and _cn(cert).endswith(product.value):
            from_anchors.setdefault(kind, cert)
    certs = _merge(certs, SnpCertificates(**from_anchors), origin, "anchors")
    vcek_signed = report.signing_key == SIGNING_KEY_VCEK
    if vcek_signed and certs.vcek is None and product is not None:
        tcb = decode_tcb(report.reported_tcb, product, field="REPORTED_TCB")
        item = ctx.source.fetch(vcek_key(product, report.chip_id, tcb), at=ctx.at)
        vcek = _parsed(ctx, item, lambda data: load_certificate(data, "VCEK from KDS"))
        fetched["vcek"] = item
        certs = _merge(certs, SnpCertificates(vcek=vcek), origin, source_name(item.source))
    if vcek_signed and certs.vcek is None:
        raise CollateralUnavailableError(
            "COLLATERAL_VCEK_MISSING",
            "no VCEK in the request and the product of this v2 report is unknown: send vcek.pem with the evidence",
        )
    needs = "ask" if vcek_signed else "asvk"
    if getattr(certs, needs) is None and product is not None:
        item = ctx.source.fetch(cert_chain_key(product, "vcek" if vcek_signed else "vlek"), at=ctx.at)
        chain = _parsed(ctx, item, lambda data: {classify(c): c for c in load_certificates(data)})
        fetched["cert_chain"] = item
        certs = _merge(certs, SnpCertificates(**chain), origin, source_name(item.source))
    return certs


def _parsed(ctx: VerifyContext, item: CollateralItem, parse: Callable[[bytes], _T]) -> _T:
    try:
        return parse(item.data)
    except (EvidenceError, ParseError) as exc:
        reject(ctx.source, item, reason=exc.code)
        raise


def _reject_unverifiable(
    fetched: Mapping[str, CollateralItem], product: Product | None, ctx: VerifyContext, links: VerifiedLinks
) -> None:
    """After a failed verification: reject the source items that do not verify against the pinned ARK on their
    own (module docstring). Only trusted material takes part: the pinned ARK-<product>, the anchors' ASK/ASVK and
    the source's cert_chain once it verified; nothing from the request."""
    if not fetched or product is None:
        return
    chain_item = fetched.get("cert_chain")
    served = load_certificates(chain_item.data) if chain_item is not None else []  # it parsed in _complete
    ark = _pinned_ark(ctx, served, product, anchors_first=True)
    if ark is None:
        return
    intermediates = [c for c in ctx.anchors.certificates if _kind(c) in ("ask", "asvk")]
    if chain_item is not None:
        try:
            chain = [c for c in served if _kind(c) in ("ask", "asvk")]
            if not chain:
                raise EvidenceError(
                    "SNP_INTERMEDIATE_MISSING",
                    "the cert_chain holds no ASK or ASVK",
                    expected="ASK or ASVK",
                    actual="none",
                )
            for cert in chain:
                check_issued_by(cert, ark, links)
                check_validity(cert, ctx.at)
            intermediates += chain
        except EvidenceError as exc:
            reject(ctx.source, chain_item, reason=exc.code)
    vcek_item = fetched.get("vcek")
    if vcek_item is None:
        return
    vcek = load_certificate(vcek_item.data, "VCEK from KDS")
    issuers = [c for c in intermediates if c.subject == vcek.issuer]
    if not issuers and common_name(vcek.issuer) == f"SEV-{product.value}":
        return  # no trusted ASK to judge it by (the request brought its own): cannot tell
    codes: list[str] = ["SNP_SIGNER_CHAIN_MISMATCH"]  # issued by anything but SEV-<product>
    for ask in issuers:
        try:
            validate_chain(vcek, [ask], ark, ctx.at, links)
            return
        except EvidenceError as exc:
            codes.insert(0, exc.code)
    reject(ctx.source, vcek_item, reason=codes[0])


def _merge(certs: SnpCertificates, more: SnpCertificates, origin: dict[str, str], source: str) -> SnpCertificates:
    for kind in _KINDS:
        if getattr(certs, kind) is None and getattr(more, kind) is not None:
            origin[kind] = source
    return certs.merged(more)


def _revocation(
    report: AttestationReport,
    certs: SnpCertificates,
    product: Product | None,
    ctx: VerifyContext,
    details: dict[str, Any],
    links: VerifiedLinks,
) -> x509.CertificateRevocationList | None:
    """The ARK-signed CRL that decides (request or source, the newer), verified; when none can be had, record why
    (policy decides). Without `ctx.check_crl` revocation is "off"."""
    if not ctx.check_crl:
        details.update(revocation="off", crl="off")
        return None
    if product is None:
        _unavailable(details, "SNP_PRODUCT_UNKNOWN")
        return None
    signer: Literal["vcek", "vlek"] = "vlek" if report.signing_key == SIGNING_KEY_VLEK else "vcek"
    ark = _pinned_ark(ctx, [certs.ark] if certs.ark is not None else [], product, anchors_first=False)
    request = next((ctx.collateral[n] for n in CRL_FILES if n in ctx.collateral), None)

    served: list[CollateralItem] = []

    def fetch() -> CollateralItem:
        served.append(ctx.source.fetch(crl_key(product, signer), at=ctx.at))
        return served[-1]

    outcome = choose_crl(request, fetch, ark, ctx.at, links)
    if served and ark is not None and (outcome.used is None or outcome.used.get("source") == "request"):
        try:  # the source's CRL did not decide: reject it when it does not verify under the pinned ARK
            verify_crl(served[0].data, ark, ctx.at, links)
        except EvidenceError as exc:
            reject(ctx.source, served[0], reason=exc.code)
    if outcome.request_error is not None:
        details["crl_request_error"] = outcome.request_error
    if outcome.crl is None:
        _unavailable(details, outcome.reason or "COLLATERAL_UNAVAILABLE")
        return None
    details.update(revocation="checked", crl="checked")
    if outcome.used is not None:
        details["collateral"] = [outcome.used]
    if outcome.superseded is not None:
        details["collateral_superseded"] = [outcome.superseded]
    return outcome.crl


def _pinned_ark(
    ctx: VerifyContext, supplied: list[x509.Certificate], product: Product, *, anchors_first: bool
) -> x509.Certificate | None:
    """The pinned ARK-<product> (`TrustAnchors.root_for`): one of `supplied` (request or source certificates) if
    pinned, or a pinned anchor; `anchors_first` says which is preferred. None when there is none."""

    def named(cert: x509.Certificate) -> bool:
        return _cn(cert) == f"ARK-{product.value}"

    given = [r for c in supplied if named(c) for r in ctx.anchors.root_for("amd-ark", c, None)]
    anchored = ctx.anchors.root_for("amd-ark", None, named)
    return next(iter([*anchored, *given] if anchors_first else [*given, *anchored]), None)


def _unavailable(details: dict[str, Any], reason: str) -> None:
    details.update(revocation="unavailable", crl="unavailable", crl_reason=reason)
    log.warning("SNP CRL unavailable: %s", reason)


def _certificate_entries(
    chain: list[x509.Certificate], signer_kind: str, origin: dict[str, str]
) -> list[dict[str, Any]]:
    """details["collateral"] entries for the signer and for the ASK/ASVK (+ARK) chain that validated it."""
    signer, intermediate, ark = chain[0], chain[1], chain[-1]
    inter_kind = "ask" if signer_kind == "vcek" else "asvk"
    return [
        {
            "item": f"amd.{signer_kind}",
            "number": None,
            "issued": _rfc3339(signer.not_valid_before_utc),
            "next_update": _rfc3339(signer.not_valid_after_utc),
            "source": origin.get(signer_kind, "request"),
        },
        {
            "item": "amd.cert_chain",
            "number": None,
            "issued": _rfc3339(intermediate.not_valid_before_utc),
            "next_update": _rfc3339(min(intermediate.not_valid_after_utc, ark.not_valid_after_utc)),
            "source": origin.get(inter_kind, "anchors"),
        },
    ]


def _rfc3339(value: dt.datetime) -> str:
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
