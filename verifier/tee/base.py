"""The seam every TEE package plugs into: parse + verify (no policy), then claims for appraisal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol

from typing_extensions import TypeVar

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
class CollateralUsed:
    """One collateral item that decided the verification (JSON-safe fields only)."""

    item: Any = None
    number: Any = None
    issued: Any = None
    next_update: Any = None
    source: Any = None

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> CollateralUsed:
        """The item of its JSON form (`to_json`; missing keys are None). Never raises."""
        return cls(**{name: entry.get(name) for name in _COLLATERAL_FIELDS})

    def to_json(self) -> dict[str, Any]:
        """The JSON form of this item (the EAR's and the appraisal row's collateral entry). Never raises."""
        return {name: getattr(self, name) for name in _COLLATERAL_FIELDS}


_COLLATERAL_FIELDS = ("item", "number", "issued", "next_update", "source")

# The parsed report and the TEE's typed verification facts of a `VerifiedEvidence` (Any where not said).
ReportT = TypeVar("ReportT", default=Any)
FactsT = TypeVar("FactsT", default=Any)


@dataclass(frozen=True)
class VerifiedEvidence(Generic[ReportT, FactsT]):
    """Outcome of steps 2-6 for one piece of evidence, what every `TeeVerifier.verify` returns.

    `parsed` is None when parsing failed; `failure` holds the first parse or verification error (the evidence is
    then untrustworthy and appraisal only reports it); `claims` are whatever could be read.

    The typed facts the service reads: `incomplete`, the error code when vendor collateral was unavailable (the
    appraisal is then incomplete and never affirming), with `retry_after` seconds when the source said;
    `revocation`: checked | off | unavailable | not-applicable (None: not reported); `collateral`: the items that
    decided."""

    tee: str
    parsed: ReportT | None
    claims: dict[str, Any]
    failure: EvidenceError | None = None
    incomplete: str | None = None
    retry_after: float | None = None
    revocation: str | None = None
    collateral: tuple[CollateralUsed, ...] = field(default_factory=tuple)
    # The TEE's own typed facts for its appraiser (e.g. the TCB evaluation, the CRL outcome); None when the TEE
    # reports none or verification stopped before they were known.
    facts: FactsT | None = None


class TeeVerifier(Protocol):
    """A TEE package's verifier, steps 2-6 of one evidence kind (parse, collateral, chains, signature; no policy):
    what each scheme of `verifier.appraisal.registry` pairs with its appraiser (`Scheme.verifier`)."""

    tee: str

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
        """Steps 2-6 for `evidence` at `ctx.at`. Never raises for bad evidence or missing collateral: a parse or
        verification failure is `failure`, unavailable collateral is `incomplete` (see `VerifiedEvidence`)."""
        ...


# The name the scheme protocol (verifier/appraisal/scheme.py) gives the verifier seam.
SchemeVerifier = TeeVerifier
