"""Reference-value comparison shared by every TEE (go-sev-guest validate.go style: report every mismatch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..reference_values.model import ReferenceValue
from .model import CONTRAINDICATED, Claim, Finding


def check_references(
    tee: str,
    actual: Mapping[str, str],
    required: Sequence[str],
    references: Sequence[ReferenceValue],
    claim_of: Mapping[str, Claim] | None = None,
) -> tuple[list[Finding], list[ReferenceValue]]:
    """Compare actual claim values (kind -> lowercase hex) with active reference values.

    A required kind must have at least one registered value and match one of them. A kind that is not required
    is checked only when values of that kind are registered. Returns the findings and the matched values."""
    by_kind: dict[str, list[ReferenceValue]] = {}
    for ref in references:
        by_kind.setdefault(ref.kind, []).append(ref)
    findings: list[Finding] = []
    matched: list[ReferenceValue] = []
    for kind in sorted(set(required) | (set(by_kind) & set(actual)), key=_kind_order):
        claim = (claim_of or {}).get(kind, Claim.EXECUTABLES)
        value = actual.get(kind)
        candidates = by_kind.get(kind, [])
        if value is None:
            findings.append(
                Finding(
                    code="CLAIM_MISSING",
                    claim=claim,
                    value=CONTRAINDICATED,
                    message=f"the evidence has no value for required {kind}",
                    expected=kind,
                    actual="absent",
                )
            )
            continue
        if not candidates:
            findings.append(
                Finding(
                    code="REFERENCE_VALUE_MISSING",
                    claim=claim,
                    value=CONTRAINDICATED,
                    message=f"the policy requires {kind} but no active reference value of that kind is registered",
                    expected=f"an active {kind} reference value",
                    actual=value,
                )
            )
            continue
        hits = [ref for ref in candidates if ref.value.hex() == value.lower()]
        if hits:
            matched.extend(hits)
            continue
        findings.append(
            Finding(
                code="REFERENCE_VALUE_MISMATCH",
                claim=claim,
                value=CONTRAINDICATED,
                message=f"{kind} matches no active reference value",
                expected=" | ".join(sorted(ref.value.hex() for ref in candidates)[:8]),
                actual=value,
            )
        )
    return findings, matched


def _kind_order(kind: str) -> tuple[str, int, str]:
    head, _, tail = kind.rpartition(".")
    digits = "".join(ch for ch in tail if ch.isdigit())
    return (head, int(digits) if digits else -1, tail)
