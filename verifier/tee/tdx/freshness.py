"""Which of two verified copies of one Intel collateral item decides: request collateral may only make a verdict
stricter (../shared/ARCHITECTURE.md, "Collateral freshness").

When the request and the verifier's collateral source (the cache, Intel PCS) both hold a TCB info, QE identity,
PCK CRL or root CA CRL, both are verified and the newer one decides. Intel items are ordered by
`tcbEvaluationDataNumber` (Intel's TCB recovery counter, PCS v4 "TDX TCB Info" / "Enclave Identity"), then
`issueDate`; CRLs by their cRLNumber extension (RFC 5280 section 5.2.3), then thisUpdate (numbers decide when both
copies have one and they differ: `verifier.collateral.ordering.ItemVersion`). On a tie the verifier's copy is used. An
older request copy is reported as superseded; a newer one is used (it can only be stricter).
No I/O and no verification here: the callers hand in verified candidates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from verifier.clock import to_rfc3339
from verifier.collateral.ordering import ItemVersion

TCB_INFO, QE_IDENTITY, PCK_CRL, ROOT_CA_CRL = "tdx.tcb_info", "tdx.qe_identity", "tdx.pck_crl", "tdx.root_ca_crl"
ITEMS = (TCB_INFO, QE_IDENTITY, PCK_CRL, ROOT_CA_CRL)
FROM_REQUEST, FROM_CACHE, FROM_VENDOR = "request", "cache", "vendor"
T = TypeVar("T")


def source_label(source: str) -> str:
    """The reported origin of an item: "request", "cache" (a cache hit), anything else "vendor"."""
    return source if source in (FROM_REQUEST, FROM_CACHE) else FROM_VENDOR


@dataclass(frozen=True)
class ItemFacts:
    """What identifies one verified collateral item: its number (tcbEvaluationDataNumber or CRL number) and
    issue time (issueDate or thisUpdate)."""

    item: str
    number: int | None
    issued: dt.datetime
    next_update: dt.datetime
    source: str  # "request" | "cache" | "vendor"

    def compare(self, other: ItemFacts) -> int:
        """-1, 0 or 1 as this copy is older than, as new as, or newer than `other` (the one order rule of
        `verifier.collateral.ordering`, shared with the cache and the AMD CRL choice)."""
        return ItemVersion(self.number, self.issued).compare(ItemVersion(other.number, other.issued))

    def to_json(self) -> dict[str, Any]:
        """The JSON entry of the item (what `tee.base.CollateralUsed` carries to the service): item, number, issued
        and next_update (RFC 3339) and source. Never raises."""
        return {
            "item": self.item,
            "number": self.number,
            "issued": to_rfc3339(self.issued),
            "next_update": to_rfc3339(self.next_update),
            "source": self.source,
        }


@dataclass(frozen=True)
class Superseded:
    """A request item older than the verifier's copy, which was used instead."""

    request: ItemFacts
    used: ItemFacts


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """One verified copy of an item: the parsed value and its facts."""

    value: T
    facts: ItemFacts


def newer(request: Candidate[T] | None, verifier: Candidate[T] | None) -> tuple[Candidate[T], Superseded | None]:
    """The candidate that decides and, when the request's copy lost because it is older, the report of that.

    Raises ValueError when both are None (callers check availability first)."""
    if request is None or verifier is None:
        chosen = request or verifier
        if chosen is None:
            raise ValueError("no candidate")
        return chosen, None
    order = request.facts.compare(verifier.facts)
    if order > 0:
        return request, None
    if order < 0:
        return verifier, Superseded(request.facts, verifier.facts)
    return verifier, None
