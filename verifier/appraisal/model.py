"""Findings, tiers and the AR4SI trust vector (draft-ietf-rats-ar4si, draft-ietf-rats-ear-04).

Every check produces a `Finding` with a stable code, the AR4SI claim it affects, the value it sets, and what was
expected beside what was found (byte values in lowercase hex). The trust vector takes, per claim, the worst value
any finding or the appraisal's baseline gave; the overall status is the worst tier of the vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Tier(StrEnum):
    """EAR / AR4SI trustworthiness tiers, ordered from best to worst."""

    NONE = "none"
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"

    @property
    def rank(self) -> int:
        """0 (none) to 3 (contraindicated): the order tiers are compared in, worse is higher. Never raises."""
        return _RANK[self]

    @classmethod
    def of(cls, value: int) -> Tier:
        """Tier of an AR4SI claim value (section 2.3.3: 2..31 affirming, 32..95 warning, 96..127 contra)."""
        if value >= 96 or value < -1:
            return cls.CONTRAINDICATED
        if value >= 32:
            return cls.WARNING
        if value >= 2:
            return cls.AFFIRMING
        if value in (-1, 1):  # -1 verifier malfunction, 1 unexpected evidence: never good news
            return cls.CONTRAINDICATED
        return cls.NONE


_RANK = {Tier.NONE: 0, Tier.AFFIRMING: 1, Tier.WARNING: 2, Tier.CONTRAINDICATED: 3}


class Claim(StrEnum):
    """AR4SI trustworthiness claims, with their EAR JSON names."""

    INSTANCE_IDENTITY = "instance-identity"
    CONFIGURATION = "configuration"
    EXECUTABLES = "executables"
    FILE_SYSTEM = "file-system"
    HARDWARE = "hardware"
    RUNTIME_OPAQUE = "runtime-opaque"
    STORAGE_OPAQUE = "storage-opaque"
    SOURCED_DATA = "sourced-data"


# AR4SI values used by this verifier (draft-ietf-rats-ar4si section 2.3.4).
AFFIRMING = 2  # recognized / approved / genuine
WARNING_UNSAFE = 32  # genuine, but with known vulnerabilities (e.g. SWHardeningNeeded)
UNRECOGNIZED = 33  # executables: runtime memory includes objects that are not recognized
CONTRAINDICATED = 96  # recognized but contraindicated (debug, revoked, forbidden configuration)
NOT_RECOGNIZED = 97  # hardware / instance not recognized although it should be
CRYPTO_FAILED = 99  # cryptographic validation of the evidence failed


@dataclass(frozen=True)
class Finding:
    """One check's outcome. `expected` and `actual` are lowercase hex for bytes, plain text otherwise."""

    code: str
    claim: Claim
    value: int
    message: str
    expected: str = ""
    actual: str = ""

    @property
    def tier(self) -> Tier:
        """The AR4SI tier of `value` (draft-ietf-rats-ar4si section 2.3.3, via `Tier.of`). Never raises."""
        return Tier.of(self.value)

    def to_json(self) -> dict[str, Any]:
        """The finding as a JSON object (code, tier, claim, value, expected, actual, message), as the audit log stores
        it. Never raises."""
        return {
            "code": self.code,
            "tier": self.tier.value,
            "claim": self.claim.value,
            "value": self.value,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message,
        }


@dataclass(frozen=True)
class TrustVector:
    """AR4SI trust vector; 0 means 'no claim'."""

    values: dict[Claim, int] = field(default_factory=dict)

    def get(self, claim: Claim) -> int:
        """The value of `claim`, 0 ("no claim") when the vector has none for it. Never raises."""
        return self.values.get(claim, 0)

    def to_json(self) -> dict[str, int]:
        """The EAR `ear_trustworthiness_vector` object (draft-ietf-rats-ear-04 s3.1): claim name -> value, claims at 0
        left out, in `Claim` order. Never raises."""
        return {c.value: self.values[c] for c in Claim if self.values.get(c, 0) != 0}

    @property
    def status(self) -> Tier:
        """The worst tier of any claim in the vector (the appraisal's overall status); NONE for an empty vector. Never
        raises."""
        worst = Tier.NONE
        for value in self.values.values():
            tier = Tier.of(value)
            if tier.rank > worst.rank:
                worst = tier
        return worst


def combine(baseline: dict[Claim, int], findings: list[Finding]) -> TrustVector:
    """Per claim, keep the worst value among the baseline and the findings (worse tier wins, then higher value)."""
    values = dict(baseline)
    for f in findings:
        current = values.get(f.claim, 0)
        if (Tier.of(f.value).rank, f.value) > (Tier.of(current).rank, current):
            values[f.claim] = f.value
    return TrustVector(values)


@dataclass(frozen=True)
class Appraisal:
    """The outcome of appraising one piece of evidence, before signing."""

    tee: str
    status: Tier
    trust_vector: TrustVector
    claims: dict[str, Any]
    findings: tuple[Finding, ...]
    policy_id: str
    matched_reference_values: tuple[str, ...] = ()
    matched_labels: tuple[str, ...] = ()  # labels of the reference values that matched (what was approved)
    # The vendor collateral that decided (item, evaluation or CRL number, issue date, next update, source:
    # request / cache / vendor / anchors), and whether revocation was checked ("checked", "unavailable", "off",
    # "not-applicable"); None when verification stopped before collateral was used.
    collateral: tuple[dict[str, Any], ...] = ()
    revocation: str | None = None
    # The approved workload version the evidence matched completely, and the policy it was appraised under:
    # {"name", "version", "id", "policy", "status"}; None when it matched none. `workloads` lists every complete
    # match (best first), each appraised under its own policy.
    workload: dict[str, Any] | None = None
    workloads: tuple[dict[str, Any], ...] = ()
