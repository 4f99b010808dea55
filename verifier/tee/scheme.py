"""One scheme per TEE: everything per-TEE the appraisal service needs, typed, behind one protocol.

A scheme (after veraison/services handler/ischemehandler.go) says which evidence kind it is (name, aliases, the
verifier.v1 EvidenceKind), verifies it (the tee/<kind>/ package), appraises what was verified (appraisal/<kind>.py),
which reference-value kinds are its claims, its main measurement, how its evidence binds a nonce and a key
(appraisal/binding.py) and which verification failures mean "recognized but contraindicated hardware" (the tier
mapping). `verifier.tee.registry` lists the schemes; the service, the gRPC conversion and the CLI ask it.

`Verified` is the outcome of verification with the facts the service reads as typed fields, built by each TEE's
`verify` (the string-keyed `details` stay for the per-TEE appraisers)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .base import VerifiedEvidence, VerifyContext

if TYPE_CHECKING:
    from ..appraisal.binding import BindingRule
    from ..appraisal.model import Claim, Finding
    from ..appraisal.policy import Policy
    from ..reference_values.model import ReferenceValue

    Appraised = tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]


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
        return cls(**{name: entry.get(name) for name in _COLLATERAL_FIELDS})

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLLATERAL_FIELDS}


_COLLATERAL_FIELDS = ("item", "number", "issued", "next_update", "source")


@dataclass(frozen=True)
class Verified(VerifiedEvidence):
    """VerifiedEvidence plus the typed facts the service reads.

    `incomplete`: the error code when vendor collateral was unavailable (the appraisal is then incomplete and
    never affirming), with `retry_after` seconds when the source said; `revocation`: checked | off | unavailable |
    not-applicable (None: not reported); `collateral`: the items that decided."""

    incomplete: str | None = None
    retry_after: float | None = None
    revocation: str | None = None
    collateral: tuple[CollateralUsed, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, evidence: VerifiedEvidence, **facts: Any) -> Verified:
        """`evidence` with the typed `facts` (field names of this class)."""
        return cls(evidence.tee, evidence.parsed, evidence.claims, evidence.failure, evidence.details, **facts)


def collateral_from_details(items: object) -> tuple[CollateralUsed, ...]:
    """The typed collateral items of a TEE package's details["collateral"] list (non-dict entries skipped)."""
    if not isinstance(items, list):
        return ()
    return tuple(CollateralUsed.from_json(item) for item in items if isinstance(item, Mapping))


class SchemeVerifier(Protocol):
    """Steps 2-6 of one evidence kind (parse, collateral, chains, signature; no policy)."""

    tee: str

    def verify(self, evidence: bytes, ctx: VerifyContext) -> Verified: ...


Appraiser = Callable[[VerifiedEvidence, "Policy", Sequence["ReferenceValue"], dt.datetime], "Appraised"]


class Scheme(Protocol):
    """Everything per-TEE the service needs (module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def aliases(self) -> tuple[str, ...]: ...

    @property
    def proto_kind(self) -> str | None:
        """The verifier.v1 EvidenceKind value name (e.g. "EVIDENCE_KIND_NITRO"); None: not on the gRPC API."""
        ...

    @property
    def verifier(self) -> SchemeVerifier: ...

    @property
    def binding(self) -> BindingRule: ...

    @property
    def main_measurement(self) -> str:
        """The name of the claim that identifies the workload (Nitro pcr0, SNP measurement, TDX mr_td)."""
        ...

    @property
    def contraindicated_codes(self) -> frozenset[str]:
        """Verification failure codes meaning the hardware was recognized but is contraindicated (AR4SI 96 on
        the hardware claim) rather than a failed cryptographic check."""
        ...

    def appraise(
        self, verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
    ) -> Appraised:
        """Steps 7-8: the baseline trust vector, the findings and the reference values that matched."""
        ...

    def owns_kind(self, kind: str) -> bool:
        """Whether the reference-value kind `kind` is a claim of this scheme."""
        ...

    def measurement(self, claims: Mapping[str, Any]) -> Any:
        """The main measurement's value in `claims` (None when absent)."""
        ...


@dataclass(frozen=True)
class TeeScheme:
    """A `Scheme` made of parts: what `verifier.tee.registry` lists, one line per TEE.

    Reference-value kinds are those named "<name>.<claim>"; the main measurement is the claim of that name unless
    `measure` reads it otherwise."""

    name: str
    verifier: SchemeVerifier
    appraiser: Appraiser
    binding: BindingRule
    main_measurement: str
    aliases: tuple[str, ...] = ()
    proto_kind: str | None = None
    contraindicated_codes: frozenset[str] = frozenset()
    measure: Callable[[Mapping[str, Any]], Any] | None = None

    def appraise(
        self, verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
    ) -> Appraised:
        return self.appraiser(verified, policy, references, at)

    def owns_kind(self, kind: str) -> bool:
        return kind.startswith(f"{self.name}.")

    def measurement(self, claims: Mapping[str, Any]) -> Any:
        return self.measure(claims) if self.measure is not None else claims.get(self.main_measurement)
