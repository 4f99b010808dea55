"""Which AMD CRL decides revocation (ARCHITECTURE.md "Collateral freshness"; AMD pub. 57230 "Certificate
Revocation List").

A CRL sent with the request may only make the verdict stricter: when the collateral source (cache, AMD KDS)
delivers the product's CRL too, both are verified against the pinned ARK at the appraisal time and the newer one
(cRLNumber, then thisUpdate: `verifier.collateral.ordering`) decides; on a tie the verifier's own copy is used. An
older request CRL is reported as superseded. Without a source CRL the request CRL is used; a request CRL that
does not verify never beats a source CRL that does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from ...clock import to_rfc3339
from ...collateral.base import CollateralItem, CollateralUnavailableError
from ...collateral.ordering import ItemVersion, crl_version
from ...errors import EvidenceError
from ...trust.chain import VerifiedLinks
from ..base import CollateralUsed
from .crl import verify_crl
from .facts import SupersededCrl

ITEM_CRL = "amd.crl"


@dataclass(frozen=True)
class CrlCandidate:
    crl: x509.CertificateRevocationList
    version: ItemVersion
    source: str  # "request" | "cache" | "vendor"


@dataclass(frozen=True)
class Revocation:
    """The outcome: the CRL to check (None: revocation unavailable, `reason` says why), the collateral item that
    decided, the superseded request CRL, if any, and the error code of a request CRL that did not verify."""

    crl: x509.CertificateRevocationList | None
    reason: str | None = None
    used: CollateralUsed | None = None
    superseded: SupersededCrl | None = None
    request_error: str | None = None


def source_name(item_source: str) -> str:
    """The provenance reported for a source item: "cache" for cache hits, "vendor" for anything fetched."""
    return "cache" if item_source == "cache" else "vendor"


def choose_crl(
    request_data: bytes | None,
    fetch: Callable[[], CollateralItem],
    ark: x509.Certificate | None,
    at: dt.datetime,
    links: VerifiedLinks | None = None,
) -> Revocation:
    """Verify the request CRL (`request_data`, DER or PEM) and the source's (`fetch()`, which may raise
    CollateralUnavailableError) against `ark` at `at`, and pick the one that decides. Never raises for bad or
    missing CRLs: they come back as `Revocation(crl=None, reason=<code>)`."""
    if ark is None:
        return Revocation(None, "CHAIN_ROOT_UNTRUSTED")
    request: CrlCandidate | None = None
    request_error: str | None = None
    if request_data is not None:
        try:
            crl = verify_crl(request_data, ark, at, links)
            request = CrlCandidate(crl, crl_version(crl), "request")
        except EvidenceError as exc:
            request_error = exc.code
    source: CrlCandidate | None = None
    source_error: str | None = None
    try:
        item = fetch()
        crl = verify_crl(item.data, ark, at, links)
        source = CrlCandidate(crl, crl_version(crl), source_name(item.source))
    except (CollateralUnavailableError, EvidenceError) as exc:
        source_error = exc.code
    if request is None and source is None:
        return Revocation(None, request_error or source_error or "COLLATERAL_UNAVAILABLE", request_error=request_error)
    superseded = None
    chosen: CrlCandidate | None = request if source is None else source
    if request is not None and source is not None:
        if source.version.older_than(request.version):
            chosen = request
        elif request.version.older_than(source.version):
            superseded = SupersededCrl(request=request.version, used=source.version)
    assert chosen is not None
    return Revocation(chosen.crl, None, collateral_entry(chosen), superseded, request_error)


def collateral_entry(candidate: CrlCandidate) -> CollateralUsed:
    """The collateral item of the deciding AMD CRL (pub. 57230 "Certificate Revocation List"): item, cRLNumber,
    thisUpdate and nextUpdate (RFC 3339, None when absent) and source. Never raises."""
    next_update = candidate.crl.next_update_utc
    return CollateralUsed(
        item=ITEM_CRL,
        number=candidate.version.number,
        issued=to_rfc3339(candidate.version.issued),
        next_update=to_rfc3339(next_update) if next_update is not None else None,
        source=candidate.source,
    )
