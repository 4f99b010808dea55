"""One scheme per TEE: everything per-TEE the appraisal service needs, typed, behind one protocol.

A scheme (after veraison/services handler/ischemehandler.go) says which evidence kind it is (name, aliases, the
verifier.v1 EvidenceKind), verifies it (the tee/<kind>/ package, behind `verifier.tee.base.TeeVerifier`), appraises
what was verified (appraisal/<kind>.py), which reference-value kinds are its claims, its main measurement, how its
evidence binds a nonce and a key (appraisal/binding.py) and which verification failures mean "recognized but
contraindicated hardware" (the tier mapping). `verifier.appraisal.registry` lists the schemes; the service, the gRPC
conversion and the CLI ask it. The scheme pairs a tee/ verifier with an appraisal/ appraiser, so it lives here, above
tee/ (../shared/ARCHITECTURE.md "Layout").

The outcome of verification is `verifier.tee.base.VerifiedEvidence[Report, Facts]`: the parsed report, the facts
the service reads as typed fields (incomplete, retry_after, revocation, collateral) and the TEE's own typed facts for
its appraiser; `Verified` is an alias of it, and `CollateralUsed` / `SchemeVerifier` are re-exported from there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..reference_values.kinds import owned_by
from ..reference_values.model import ReferenceValue
from ..tee.base import CollateralUsed as CollateralUsed
from ..tee.base import SchemeVerifier as SchemeVerifier
from ..tee.base import VerifiedEvidence
from .binding import BindingRule
from .model import Claim, Finding
from .policy import Policy

Appraised = tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]

# The old name of `VerifiedEvidence` (verifier.tee.base), which now carries the typed facts itself.
Verified = VerifiedEvidence

Appraiser = Callable[[VerifiedEvidence, Policy, Sequence[ReferenceValue], dt.datetime], Appraised]


class Scheme(Protocol):
    """Everything per-TEE the service needs (module docstring)."""

    @property
    def name(self) -> str:
        """The canonical evidence-kind name ("nitro", "snp", "tdx")."""
        ...

    @property
    def aliases(self) -> tuple[str, ...]:
        """Other names a request may use for the kind (e.g. "sev-snp")."""
        ...

    @property
    def proto_kind(self) -> str | None:
        """The verifier.v1 EvidenceKind value name (e.g. "EVIDENCE_KIND_NITRO"); None: not on the gRPC API."""
        ...

    @property
    def verifier(self) -> SchemeVerifier:
        """The tee/<kind>/ verifier (steps 2-6)."""
        ...

    @property
    def binding(self) -> BindingRule:
        """How the evidence binds a nonce and a key (appraisal/binding.py)."""
        ...

    @property
    def main_measurement(self) -> str:
        """The name of the claim that identifies the workload (Nitro pcr0, SNP measurement, TDX mr_td)."""
        ...

    @property
    def contraindicated_codes(self) -> frozenset[str]:
        """Verification failure codes meaning the hardware was recognized but is contraindicated (AR4SI 96 on
        the hardware claim) rather than a failed cryptographic check, for codes `verifier.error_catalog` does not
        know (a scheme registered from outside verifier/); the built-in schemes' codes get their tier there."""
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

    def looks_like(self, evidence: bytes) -> bool:
        """Whether `evidence`'s first bytes show this TEE's format (kind detection when the caller names none)."""
        ...


@dataclass(frozen=True)
class TeeScheme:
    """A `Scheme` made of parts: what `verifier.appraisal.registry` lists, one line per TEE.

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
    detect: Callable[[bytes], bool] | None = None

    def appraise(
        self, verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
    ) -> Appraised:
        """Steps 7-8 by the scheme's appraiser (appraisal/<kind>.py); raises what it raises (typed errors only)."""
        return self.appraiser(verified, policy, references, at)

    def owns_kind(self, kind: str) -> bool:
        """Whether `kind` is named "<name>.<claim>" (`reference_values.kinds.owned_by`). Never raises."""
        return owned_by(self.name, kind)

    def measurement(self, claims: Mapping[str, Any]) -> Any:
        """`measure(claims)` when given, else the claim named `main_measurement` (None when absent). Never raises
        for a mapping."""
        return self.measure(claims) if self.measure is not None else claims.get(self.main_measurement)

    def looks_like(self, evidence: bytes) -> bool:
        """`detect(evidence)`; False for a scheme without a detector (it is chosen only by name). Never raises."""
        return self.detect is not None and self.detect(evidence)
