"""The seam every TEE package plugs into: parse + verify (no policy), then claims for appraisal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..collateral.base import CollateralSource, OfflineSource
from ..errors import EvidenceError
from ..trust.anchors import TrustAnchors


@dataclass(frozen=True)
class VerifyContext:
    """Everything verification may use: one appraisal time, pinned anchors, collateral from the request."""

    at: dt.datetime
    anchors: TrustAnchors
    collateral: Mapping[str, bytes] = field(default_factory=dict)
    # Where missing vendor collateral comes from (AMD KDS, cache); offline by default.
    source: CollateralSource = field(default_factory=OfflineSource)
    # Check vendor CRLs (SEV-SNP: the ARK-signed CRL of the product), on by default; when no valid CRL can be had,
    # policy decides fail-closed (default) or fail-open. False is the explicit opt-out (`--no-check-crl`).
    check_crl: bool = True


@dataclass(frozen=True)
class VerifiedEvidence:
    """Outcome of steps 2-6 for one piece of evidence.

    `parsed` is None when parsing failed; `failure` holds the first parse or verification error (the evidence is
    then untrustworthy and appraisal only reports it); `claims` are whatever could be read."""

    tee: str
    parsed: Any
    claims: dict[str, Any]
    failure: EvidenceError | None = None
    # Facts about the verification that appraisal policy needs (e.g. SNP "revocation": checked|off|unavailable,
    # "collateral": the items that decided, "collateral_superseded": request collateral that lost to newer).
    details: dict[str, Any] = field(default_factory=dict)


class TeeVerifier(Protocol):
    tee: str

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence: ...
