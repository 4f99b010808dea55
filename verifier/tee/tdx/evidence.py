"""The TDX verifier behind the TEE seam: parse, collateral, verify, compute the TCB status (no policy).

Collateral, item by item (TCB info, QE identity, PCK CRL, root CA CRL): the request's files (the names of
../shared/vectors: tcb_info.json, qe_identity.json, *_issuer_chain.pem, pck_crl.der, root_ca_crl.der, or dcap-qvl's
collateral.json) and what the verifier's source (the database cache, Intel PCS / a PCCS) has; when both have an
item, both are verified and the newer decides, so request collateral can only make the verdict stricter
(collateral.verify_collateral, freshness.py). Without collateral the quote signature, QE report and PCK chain are
still verified and the TCB status is unknown: the appraisal is incomplete (`incomplete`, `TdxFacts.collateral_error`)
and never affirming.

The outcome is `VerifiedEvidence[Quote, TdxFacts]` (facts.py): the TCB evaluation (or None), the collateral items used
(item, number, issued, next_update, source request|cache|vendor), the request items older than the verifier's
(superseded), the collateral error and the earliest nextUpdate; `revocation` is "checked" when both verified CRLs
were applied, else "unavailable".

An item the source delivered that does not parse, or does not verify on its own against the pinned Intel root
(chain, signature, validity window: anything but a PCK CRL for another issuer than the quote's PCK), is reported
to the source (`collateral.base.reject`) so a cache drops it and the vendor is asked again; this check runs only
when the source's copy was not the one used. Nothing the request brings evicts anything."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from cryptography import x509

from ...clock import to_rfc3339
from ...collateral.base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError, reject
from ...collateral.pcs_items import KIND_PCK_CRL, KIND_QE_IDENTITY, KIND_ROOT_CA_CRL, KIND_TCB_INFO
from ...errors import EvidenceError, ParseError
from ...trust.certs import load_crl
from ...trust.chain import VerifiedLinks
from ...trust.names import issuer_key, issuer_text
from ..base import CollateralUsed, VerifiedEvidence, VerifyContext
from ..parse_memo import ParseMemo
from .claims import claims as quote_claims
from .collateral import Fetched, VerifiedCollateral
from .collateral_checks import VENDOR, check_pck_crl, check_qe_identity, check_root_ca_crl, check_tcb_info
from .collateral_documents import TdxCollateral, collateral_from_files
from .collateral_memo import VerifiedCollateralMemo
from .enclave_report import EnclaveReport
from .facts import TdxFacts
from .freshness import FROM_REQUEST, PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO
from .pck import PckInfo, pck_chain, pck_info
from .pcs import fetch_collateral
from .quote import Quote, parse_quote
from .tcb import TcbResult, evaluate
from .verify import verify_quote

log = logging.getLogger(__name__)
_PARSED = ParseMemo("TDX quotes", parse_quote)


class TdxVerifier:
    tee = "tdx"

    def __init__(self, links: VerifiedLinks | None = None) -> None:
        """`links`: the cache of verified signatures (the composition root may share one); a fresh one by default.
        `collateral_memo`: verified collateral over the span of times it holds (collateral_memo.py)."""
        self.links = links if links is not None else VerifiedLinks()
        self.collateral_memo = VerifiedCollateralMemo()

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence[Quote, TdxFacts]:
        """Steps 2-6 (module docstring): the parsed quote, its claims and the typed `TdxFacts` (TCB evaluation,
        collateral used and superseded, the collateral error), with `incomplete` / `retry_after` when collateral was
        unavailable, `revocation` and `collateral` filled for the service. Never raises for
        bad evidence: the first error is the result's `failure` (facts are None when it came before collateral)."""
        try:
            quote = _PARSED(evidence)
        except ParseError as exc:
            return VerifiedEvidence(self.tee, None, {}, exc)
        try:
            chain = pck_chain(quote.pck_chain_pem)
            pck = pck_info(chain[0])
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, quote, quote_claims(quote, None), exc)
        claims = quote_claims(quote, pck)
        retry_after: float | None = None
        try:
            checked = self._collateral(chain, pck, ctx)
            facts = TdxFacts(collateral=checked.items, superseded=checked.superseded)
        except CollateralUnavailableError as exc:
            log.warning("TDX collateral unavailable: %s", exc.code)
            checked, facts, retry_after = None, TdxFacts(collateral_error=exc.code), exc.retry_after
        except EvidenceError as exc:
            return _result(quote, claims, exc, TdxFacts(), checked=False)
        try:
            verified = verify_quote(
                quote,
                ctx.anchors,
                ctx.at,
                pck_certificates=chain,
                links=self.links,
                pck_crl=checked.pck_crl if checked else None,
                root_ca_crl=checked.root_ca_crl if checked else None,
            )
            if checked is not None:
                tcb = self._tcb(quote, pck, verified.qe_report, checked)
                facts = dataclasses.replace(facts, tcb=tcb, next_update=checked.next_update)
        except EvidenceError as exc:
            return _result(quote, claims, exc, facts, checked=checked is not None, retry_after=retry_after)
        claims.update(
            tcb_status=facts.tcb.status if facts.tcb else "unknown",
            advisory_ids=list(facts.tcb.advisory_ids) if facts.tcb else [],
            tcb_date=to_rfc3339(facts.tcb.tcb_date) if facts.tcb and facts.tcb.tcb_date else None,
        )
        return _result(quote, claims, None, facts, checked=checked is not None, retry_after=retry_after)

    def _collateral(self, chain: list[x509.Certificate], pck: PckInfo, ctx: VerifyContext) -> VerifiedCollateral:
        """Request and source copies of every item, verified, the newer deciding (`chain`: the quote's PCK chain,
        leaf first). Raises CollateralUnavailableError (an item in neither) or EvidenceError
        (collateral.verify_collateral)."""
        leaf = chain[0]
        from_request = collateral_from_files(ctx.collateral)
        issuer = issuer_text(leaf).lower()
        ca = "processor" if "processor" in issuer else "platform"
        served = _Served(ctx.source)
        fetched = fetch_collateral(served, pck.fmspc, ca, ctx.at)
        try:
            checked = self.collateral_memo.verify(
                from_request,
                ctx.anchors,
                ctx.at,
                pck_issuer=leaf.issuer,
                pck_issuer_key=issuer_key(leaf),
                fetched=fetched,
                links=self.links,
            )
        except (EvidenceError, CollateralUnavailableError):
            _reject_unverifiable(served, fetched, chain, ctx, self.links)
            raise
        if any(facts.source == FROM_REQUEST for facts in checked.items):
            _reject_unverifiable(served, fetched, chain, ctx, self.links)
        return checked

    @staticmethod
    def _tcb(quote: Quote, pck: PckInfo, qe_report: EnclaveReport, checked: VerifiedCollateral) -> TcbResult:
        return evaluate(
            checked.tcb_info,
            checked.qe_identity,
            pck,
            qe_report,
            tee_tcb_svn=quote.body.tee_tcb_svn,
            mr_signer_seam=quote.body.mr_signer_seam,
            seam_attributes=quote.body.seam_attributes,
            tee_tcb_svn_2=quote.body.tee_tcb_svn_2,
        )


def _result(
    quote: Quote,
    claims: dict[str, Any],
    failure: EvidenceError | None,
    facts: TdxFacts,
    *,
    checked: bool,
    retry_after: float | None = None,
) -> VerifiedEvidence[Quote, TdxFacts]:
    """The verification outcome with the service's typed fields beside `facts`: `incomplete` (the collateral
    error), `retry_after`, `revocation` ("checked" when verified collateral was `checked`: verify_quote applies both
    CRLs to the PCK chain, else "unavailable") and `collateral` (the items used). Never raises."""
    return VerifiedEvidence(
        TdxVerifier.tee,
        quote,
        claims,
        failure,
        incomplete=facts.collateral_error,
        retry_after=retry_after if facts.collateral_error else None,
        revocation="checked" if checked else "unavailable",
        collateral=tuple(CollateralUsed.from_json(used.to_json()) for used in facts.collateral),
        facts=facts,
    )


_KINDS = {TCB_INFO: KIND_TCB_INFO, QE_IDENTITY: KIND_QE_IDENTITY, PCK_CRL: KIND_PCK_CRL, ROOT_CA_CRL: KIND_ROOT_CA_CRL}


class _Served:
    """Passes fetches through to the verifier's source and remembers the items it delivered, by kind."""

    def __init__(self, inner: CollateralSource) -> None:
        self.inner = inner
        self.items: dict[str, CollateralItem] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        item = self.inner.fetch(key, at=at)
        self.items[key.kind] = item
        return item


def _reject_unverifiable(
    served: _Served, fetched: Fetched, pck_chain: list[x509.Certificate], ctx: VerifyContext, links: VerifiedLinks
) -> None:
    """Reject (module docstring) each delivered item that did not parse or does not verify on its own
    (`pck_chain`: the quote's, leaf first)."""
    for item, error in fetched.errors.items():
        delivered = served.items.get(_KINDS[item])
        if delivered is not None and isinstance(error, EvidenceError | CollateralUnavailableError):
            reject(ctx.source, delivered, reason=error.code)
    col = fetched.collateral
    pck_issuer = pck_chain[0].issuer
    supplied = [
        c[-1]
        for c in (pck_chain, col.tcb_info_issuer_chain, col.qe_identity_issuer_chain, col.pck_crl_issuer_chain)
        if c
    ]
    checks: tuple[tuple[str, Callable[[], object]], ...] = (
        (TCB_INFO, lambda: check_tcb_info(col, ctx.anchors, ctx.at, "vendor", links)),
        (QE_IDENTITY, lambda: check_qe_identity(col, ctx.anchors, ctx.at, "vendor", links)),
        (PCK_CRL, lambda: check_pck_crl(col, ctx.anchors, ctx.at, "vendor", pck_issuer=pck_issuer, links=links)),
        (ROOT_CA_CRL, lambda: _check_served_root_ca_crl(col, supplied, ctx, links)),
    )
    for item, check in checks:
        delivered = served.items.get(_KINDS[item])
        if delivered is None or item in fetched.errors or not col.has(item):
            continue
        try:
            check()
        except EvidenceError as exc:
            if exc.code != "CRL_ISSUER_MISMATCH":  # the quote's PCK names another CA: not the item's fault
                reject(ctx.source, delivered, reason=exc.code)


def _check_served_root_ca_crl(
    col: TdxCollateral, supplied: list[x509.Certificate], ctx: VerifyContext, links: VerifiedLinks
) -> None:
    """Check the root CA CRL of `col` on its own: against each pinned Intel root named as its issuer
    (`TrustAnchors.root_for`: a `supplied` top of a chain if pinned, or a pinned anchor), whatever became of the
    PCK CRL; it verifies when one of them verifies it. Raises the first root's EvidenceError otherwise
    (CRL_MALFORMED, CRL_SIGNATURE_INVALID, TDX_COLLATERAL_EXPIRED...). No pinned root of that name: nothing to
    check against (as for a CRL_ISSUER_MISMATCH, it is not rejected)."""
    assert col.root_ca_crl is not None
    issuer = load_crl(col.root_ca_crl, "root CA CRL").issuer
    given = [r for c in supplied if c.subject == issuer for r in ctx.anchors.root_for(VENDOR, c, None)]
    failure: EvidenceError | None = None
    for root in [*given, *ctx.anchors.root_for(VENDOR, None, issuer)]:
        try:
            check_root_ca_crl(col, root, ctx.at, "vendor", links)
            return
        except EvidenceError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
