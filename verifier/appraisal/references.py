"""Reference-value comparison shared by every TEE (go-sev-guest validate.go style: report every mismatch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..reference_values.kinds import actual_text, expected_text, holds, known_kinds, satisfied, spec
from ..reference_values.model import ReferenceValue
from .model import CONTRAINDICATED, Claim, Finding


def check_references(
    tee: str,
    actual: Mapping[str, str],
    required: Sequence[str],
    references: Sequence[ReferenceValue],
    claim_of: Mapping[str, Claim] | None = None,
) -> tuple[list[Finding], list[ReferenceValue]]:
    """Compare actual claim values (kind -> lowercase hex; big-endian for integer claims) with reference values.

    Each kind matches as reference_values/kinds.py declares it: "equal" kinds when one value equals the claim
    (values are alternatives), "at_least" and "masked" kinds when every value holds (constraints). A required
    kind must have at least one value and match. A kind that is not required is checked when values of that kind
    are given: the claim must then be present (CLAIM_MISSING otherwise: a workload that pins a claim the evidence
    lacks, e.g. tdx.mr_servicetd for a TD 1.0 report, is not matched). Returns the findings (CLAIM_MISSING,
    REFERENCE_VALUE_MISSING, REFERENCE_VALUE_MISMATCH, each with readable expected and actual) and the values of
    every kind that matched. Never raises for evidence values; a reference of an unknown kind is a mismatch."""
    by_kind: dict[str, list[ReferenceValue]] = {}
    for ref in references:
        if ref.kind.startswith(f"{tee}."):  # another TEE's values can never be evidence of this one
            by_kind.setdefault(ref.kind, []).append(ref)
    findings: list[Finding] = []
    matched: list[ReferenceValue] = []
    known = set(known_kinds())
    for kind in sorted(set(required) | set(by_kind), key=_kind_order):
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
        if kind not in known:
            findings.append(
                _mismatch(kind, claim, f"{kind} is not a kind this verifier can compare", "a known kind", value)
            )
            continue
        values = [ref.value for ref in candidates]
        if satisfied(kind, values, value):
            if spec(kind).match == "equal":
                matched.extend(ref for ref in candidates if holds(kind, ref.value, value))
            else:
                matched.extend(candidates)
            continue
        how = "matches no active reference value" if spec(kind).match == "equal" else "fails a reference constraint"
        findings.append(
            _mismatch(kind, claim, f"{kind} {how}", expected_text(kind, values, value), actual_text(kind, value))
        )
    return findings, matched


def _mismatch(kind: str, claim: Claim, message: str, expected: str, actual: str) -> Finding:
    return Finding(
        code="REFERENCE_VALUE_MISMATCH",
        claim=claim,
        value=CONTRAINDICATED,
        message=message,
        expected=expected,
        actual=actual,
    )


def _kind_order(kind: str) -> tuple[str, int, str]:
    head, _, tail = kind.rpartition(".")
    digits = "".join(ch for ch in tail if ch.isdigit())
    return (head, int(digits) if digits else -1, tail)
