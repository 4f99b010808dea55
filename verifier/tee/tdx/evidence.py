"""The TDX verifier behind the TEE seam: parse, collateral, verify, compute the TCB status (no policy).

Collateral, item by item (TCB info, QE identity, PCK CRL, root CA CRL): the request's files (the names of
../shared/vectors: tcb_info.json, qe_identity.json, *_issuer_chain.pem, pck_crl.der, root_ca_crl.der, or dcap-qvl's
collateral.json) and what the verifier's source (the database cache, Intel PCS / a PCCS) has; when both have an
item, both are verified and the newer decides, so request collateral can only make the verdict stricter
(collateral.verify_collateral, freshness.py). Without collateral the quote signature, QE report and PCK chain are
still verified and the TCB status is unknown: the appraisal is incomplete (`collateral_error`) and never affirming.

`details`: "tcb" (the TCB evaluation or None), "collateral" (one dict per item used: item, number, issued,
next_update, source request|cache|vendor), "collateral_superseded" (request items older than the verifier's),
"revocation" ("checked" when both verified CRLs were applied, else "unavailable"), "collateral_next_update"."""

from __future__ import annotations

import logging
from typing import Any

from cryptography import x509

from ...clock import to_rfc3339
from ...collateral.base import CollateralUnavailableError
from ...errors import EvidenceError, ParseError
from ..base import VerifiedEvidence, VerifyContext
from .claims import claims as quote_claims
from .collateral import VerifiedCollateral, collateral_from_files, verify_collateral
from .pck import PckInfo, pck_chain, pck_info
from .pcs import fetch_collateral
from .quote import Quote, parse_quote
from .tcb import evaluate
from .verify import verify_quote

log = logging.getLogger(__name__)


class TdxVerifier:
    tee = "tdx"

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
        try:
            quote = parse_quote(evidence)
        except ParseError as exc:
            return VerifiedEvidence(self.tee, None, {}, exc)
        try:
            chain = pck_chain(quote.pck_chain_pem)
            pck = pck_info(chain[0])
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, quote, quote_claims(quote, None), exc)
        claims = quote_claims(quote, pck)
        details: dict[str, Any] = {"tcb": None, "collateral": [], "collateral_superseded": [],
                                   "revocation": "unavailable"}
        try:
            checked = self._collateral(chain[0], pck, ctx)
        except CollateralUnavailableError as exc:
            log.warning("TDX collateral unavailable: %s", exc.code)
            details["collateral_error"] = exc.code
            checked = None
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, quote, claims, exc, details)
        if checked is not None:
            details["collateral"] = [facts.to_json() for facts in checked.items]
            details["collateral_superseded"] = [old.to_json() for old in checked.superseded]
            details["revocation"] = "checked"  # both CRLs verified; verify_quote applies them to the PCK chain
        try:
            verified = verify_quote(quote, ctx.anchors, ctx.at, pck_crl=checked.pck_crl if checked else None,
                                    root_ca_crl=checked.root_ca_crl if checked else None)
            if checked is not None:
                details["tcb"] = self._tcb(quote, pck, verified.qe_report, checked)
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, quote, claims, exc, details)
        tcb = details["tcb"] or {}
        claims.update(tcb_status=tcb.get("status", "unknown"), advisory_ids=tcb.get("advisory_ids", []),
                      tcb_date=tcb.get("tcb_date"))
        if checked is not None:
            details["collateral_next_update"] = to_rfc3339(checked.next_update)
        return VerifiedEvidence(self.tee, quote, claims, None, details)

    @staticmethod
    def _collateral(leaf: x509.Certificate, pck: PckInfo, ctx: VerifyContext) -> VerifiedCollateral:
        """Request and source copies of every item, verified, the newer deciding. Raises
        CollateralUnavailableError (an item in neither) or EvidenceError (collateral.verify_collateral)."""
        from_request = collateral_from_files(ctx.collateral)
        issuer = leaf.issuer.rfc4514_string().lower()
        ca = "processor" if "processor" in issuer else "platform"
        fetched = fetch_collateral(ctx.source, pck.fmspc, ca, ctx.at)
        return verify_collateral(from_request, ctx.anchors, ctx.at, pck_issuer=leaf.issuer, fetched=fetched)

    @staticmethod
    def _tcb(quote: Quote, pck: PckInfo, qe_report: Any, checked: VerifiedCollateral) -> dict[str, Any]:
        result = evaluate(checked.tcb_info, checked.qe_identity, pck, qe_report,
                          tee_tcb_svn=quote.body.tee_tcb_svn, mr_signer_seam=quote.body.mr_signer_seam,
                          seam_attributes=quote.body.seam_attributes, tee_tcb_svn_2=quote.body.tee_tcb_svn_2)
        return {
            "status": result.status,
            "advisory_ids": list(result.advisory_ids),
            "tcb_date": to_rfc3339(result.tcb_date) if result.tcb_date else None,
            "platform_status": result.platform_status,
            "qe_status": result.qe_status,
            "module_status": result.module_status,
        }
