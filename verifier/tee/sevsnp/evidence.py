"""The SEV-SNP verifier behind the TEE seam: parse, gather collateral, verify (no policy).

Collateral order (first found wins): the request's files (`vcek.pem|der`, `vlek.pem|der`, `ask.pem`, `asvk.pem`,
`ark.pem`, `cert_chain.pem`, an extended-report certificate table `cert_table.bin`, `crl.der`), the configured
trust-anchor directory (ARK/ASK/ASVK), then the collateral source (AMD KDS through the database cache; offline
means none). VLEKs cannot be downloaded and must come with the evidence.

Revocation is checked by default (`VerifyContext.check_crl`): the product's ARK-signed CRL from the request and
from the source, the newer deciding (`revocation.py`). The facts for appraisal are typed: `VerifiedEvidence.facts`
is an `SnpFacts` (`facts.py`: the verified product, revocation "checked" | "off" | "unavailable" and why, the CRL
that decided, the request CRL it superseded), `revocation` repeats its state and `collateral` lists what decided:
the signer ("amd.vcek" | "amd.vlek"), its "amd.cert_chain" and the "amd.crl", each with its source ("request" |
"cache" | "vendor" | "anchors").

Vendor collateral that cannot be had (no VCEK in the request and none from the source, no cert chain, a v2 report
of unknown product: `CollateralUnavailableError`) is said as TDX says it: the result is `incomplete` with the
error's code and `retry_after`, and, since the report signature could not be checked, its `failure` is an
EvidenceError of the same code (never affirming; the service answers UNAVAILABLE unless told to allow it).

A source item that does not verify against the pinned trust anchors on its own (a VCEK not issued by a pinned
ASK, a cert_chain whose ASK/ASVK is not signed by the pinned ARK, a CRL not signed by it, an item that does not
parse) is reported to the source (`collateral.base.reject`), so a cache drops it and the vendor is asked again.
Failures that depend on the request (its own certificates, the report signature) never evict anything."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Literal, TypeVar

from cryptography import x509

from ...clock import to_rfc3339
from ...collateral.base import CollateralItem, CollateralUnavailableError, reject
from ...errors import EvidenceError, ParseError
from ...trust.chain import VerifiedLinks, check_issued_by, check_validity, validate_chain
from ...trust.names import subject_text
from ..base import CollateralUsed, VerifiedEvidence, VerifyContext
from ..parse_memo import ParseMemo
from .abi import SIGNING_KEY_VCEK, SIGNING_KEY_VLEK, AttestationReport, parse_report
from .certs import SnpCertificates, classify, common_name, kds_extensions, load_certificate, load_certificates
from .certtable import parse_cert_table
from .claims import claims as report_claims
from .collateral_keys import cert_chain_key, crl_key, vcek_key
from .crl import verify_crl
from .facts import SnpFacts
from .revocation import choose_crl, source_name
from .tcb import Product, decode_tcb, product_from_cpuid, product_from_name
from .verify import verify_report

log = logging.getLogger(__name__)

CERT_FILES = ("vcek.pem", "vcek.der", "vlek.pem", "vlek.der", "ask.pem", "asvk.pem", "ark.pem", "cert_chain.pem")
CERT_TABLE_FILES = ("cert_table.bin", "certs.bin")
CRL_FILES = ("crl.der", "crl.pem")
_T = TypeVar("_T")
_PARSED = ParseMemo("SEV-SNP reports", parse_report)


class SnpVerifier:
    tee = "snp"

    def __init__(self, links: VerifiedLinks | None = None) -> None:
        """`links`: the cache of verified signatures (the composition root may share one); a fresh one by default."""
        self.links = links if links is not None else VerifiedLinks()

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence[AttestationReport, SnpFacts]:
        """Steps 2-6 (module docstring): the parsed report, its claims and `SnpFacts`. Never raises for bad
        evidence or missing collateral: the first error is the result's `failure`; collateral that cannot be had
        also makes it `incomplete` (the CollateralUnavailableError's code and `retry_after`)."""
        try:
            report = _PARSED(evidence)
        except ParseError as exc:
            return VerifiedEvidence(self.tee, None, {}, exc)
        product = product_from_cpuid(report.cpuid_fam_id, report.cpuid_mod_id)
        try:
            certs = _from_request(ctx.collateral)
        except (EvidenceError, ParseError) as exc:
            return self._failed(report, product, exc)
        signer = certs.vlek if report.signing_key == SIGNING_KEY_VLEK else certs.vcek
        if product is None and signer is not None:
            product = product_from_name(_product_name(signer) or "")
        origin = {kind: "request" for kind in _KINDS if getattr(certs, kind) is not None}
        fetched: dict[str, CollateralItem] = {}
        try:
            certs = _complete(report, certs, product, ctx, origin, fetched)
        except CollateralUnavailableError as exc:
            return self._incomplete(report, product, exc)
        except EvidenceError as exc:  # a served item that does not parse (rejected already): as TDX, the failure
            return self._failed(report, product, exc)
        crl, facts = _revocation(report, certs, product, ctx, self.links)
        try:
            verified = verify_report(report, certs, ctx.anchors, ctx.at, product=product, crl=crl, links=self.links)
        except EvidenceError as exc:
            _reject_unverifiable(fetched, product, ctx, self.links)
            return self._failed(report, product, exc, facts)
        claims = report_claims(report, verified.product)
        claims["signer"] = {
            "kind": verified.signer_kind,
            "subject": subject_text(verified.signer),
            "not_after": verified.signer.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        facts = dataclasses.replace(facts, product=verified.product)
        certificates = _certificate_entries(verified.chain, verified.signer_kind, origin)
        return VerifiedEvidence(
            self.tee,
            report,
            claims,
            revocation=facts.revocation,
            collateral=(*certificates, *_crl_used(facts)),
            facts=facts,
        )

    def _failed(
        self, report: AttestationReport, product: Product | None, exc: EvidenceError, facts: SnpFacts | None = None
    ) -> VerifiedEvidence[AttestationReport, SnpFacts]:
        """The result for a report that did not verify: its claims, the failure, and the revocation facts when
        they were established before it (the product stays None: it was not verified)."""
        return VerifiedEvidence(
            self.tee,
            report,
            report_claims(report, product),
            exc,
            revocation=facts.revocation if facts is not None else None,
            collateral=_crl_used(facts),
            facts=facts,
        )

    def _incomplete(
        self, report: AttestationReport, product: Product | None, exc: CollateralUnavailableError
    ) -> VerifiedEvidence[AttestationReport, SnpFacts]:
        """Vendor collateral cannot be had: `incomplete` as TDX says it, and a failure of the same code because the
        report's signature could not be checked (so the appraisal is never affirming)."""
        log.warning("SNP collateral unavailable: %s", exc.code)
        failure = EvidenceError(
            exc.code,
            f"the report signature could not be checked: {exc.message}",
            expected="the VCEK or VLEK and its ASK/ASVK (request, trust anchors or AMD KDS)",
            actual="unavailable",
        )
        return VerifiedEvidence(
            self.tee,
            report,
            report_claims(report, product),
            failure,
            incomplete=exc.code,
            retry_after=exc.retry_after,
        )


def _crl_used(facts: SnpFacts | None) -> tuple[CollateralUsed, ...]:
    return (facts.crl,) if facts is not None and facts.crl is not None else ()


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
    links: VerifiedLinks,
) -> tuple[x509.CertificateRevocationList | None, SnpFacts]:
    """The ARK-signed CRL that decides (request or source, the newer), verified, and the revocation facts; when
    none can be had, the facts say why (policy decides). Without `ctx.check_crl` revocation is "off"."""
    if not ctx.check_crl:
        return None, SnpFacts(revocation="off")
    if product is None:
        return None, _unavailable("SNP_PRODUCT_UNKNOWN")
    signer: Literal["vcek", "vlek"] = "vlek" if report.signing_key == SIGNING_KEY_VLEK else "vcek"
    ark = _pinned_ark(ctx, [certs.ark] if certs.ark is not None else [], product, anchors_first=False)
    request = next((ctx.collateral[n] for n in CRL_FILES if n in ctx.collateral), None)

    served: list[CollateralItem] = []

    def fetch() -> CollateralItem:
        served.append(ctx.source.fetch(crl_key(product, signer), at=ctx.at))
        return served[-1]

    outcome = choose_crl(request, fetch, ark, ctx.at, links)
    if served and ark is not None and (outcome.used is None or outcome.used.source == "request"):
        try:  # the source's CRL did not decide: reject it when it does not verify under the pinned ARK
            verify_crl(served[0].data, ark, ctx.at, links)
        except EvidenceError as exc:
            reject(ctx.source, served[0], reason=exc.code)
    if outcome.crl is None:
        return None, _unavailable(outcome.reason or "COLLATERAL_UNAVAILABLE", outcome.request_error)
    facts = SnpFacts(
        revocation="checked",
        crl=outcome.used,
        crl_superseded=outcome.superseded,
        crl_request_error=outcome.request_error,
    )
    return outcome.crl, facts


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


def _unavailable(reason: str, request_error: str | None = None) -> SnpFacts:
    log.warning("SNP CRL unavailable: %s", reason)
    return SnpFacts(revocation="unavailable", crl_reason=reason, crl_request_error=request_error)


def _certificate_entries(
    chain: list[x509.Certificate], signer_kind: str, origin: dict[str, str]
) -> tuple[CollateralUsed, ...]:
    """The collateral items of the signer and of the ASK/ASVK (+ARK) chain that validated it (`chain`: signer,
    intermediate, ARK), each from where it came (`origin`, by certificate kind)."""
    signer, intermediate, ark = chain[0], chain[1], chain[-1]
    inter_kind = "ask" if signer_kind == "vcek" else "asvk"
    return (
        CollateralUsed(
            item=f"amd.{signer_kind}",
            issued=to_rfc3339(signer.not_valid_before_utc),
            next_update=to_rfc3339(signer.not_valid_after_utc),
            source=origin.get(signer_kind, "request"),
        ),
        CollateralUsed(
            item="amd.cert_chain",
            issued=to_rfc3339(intermediate.not_valid_before_utc),
            next_update=to_rfc3339(min(intermediate.not_valid_after_utc, ark.not_valid_after_utc)),
            source=origin.get(inter_kind, "anchors"),
        ),
    )


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
