"""The typed facts of a TDX verification that its appraiser reads (verifier/appraisal/tdx.py), beside the quote.

`VerifiedEvidence[Quote, TdxFacts]` (tee/tdx/evidence.py): the quote is `parsed`, these are `facts`. They replace
the string-keyed `details` the appraiser used to read: the TCB evaluation (Intel QVL, tcb.py), the collateral items
that decided and the request items the verifier's newer copies superseded (freshness.py), and why collateral was
unavailable when it was (the appraisal is then incomplete and never affirming)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .freshness import ItemFacts, Superseded
from .tcb import TcbResult


@dataclass(frozen=True)
class TdxFacts:
    """What verification established beside the quote itself (module docstring).

    `tcb`: the TCB evaluation against the collateral used; None when collateral was unavailable or verification
    stopped before the TCB status was computed. `collateral`: the copies used (TCB info, QE identity, PCK CRL,
    root CA CRL), `superseded`: request copies older than the verifier's, which decided instead.
    `collateral_error`: the error code when collateral was unavailable (COLLATERAL_OFFLINE, COLLATERAL_NOT_FOUND,
    ...). `next_update`: the earliest nextUpdate of the items used."""

    tcb: TcbResult | None = None
    collateral: tuple[ItemFacts, ...] = ()
    superseded: tuple[Superseded, ...] = ()
    collateral_error: str | None = None
    next_update: dt.datetime | None = None

    def item(self, name: str) -> ItemFacts | None:
        """The collateral copy used for item `name` (freshness.TCB_INFO, ...), None when none was. Never raises."""
        return next((used for used in self.collateral if used.item == name), None)
