"""Reference-value comparison shared by every TEE (go-sev-guest validate.go style: report every mismatch)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from ..reference_values.kinds import actual_text, expected_text, holds, known_kind_set, satisfied, spec
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
    prefix = f"{tee}."
    for ref in references:
        if ref.kind.startswith(prefix):  # another TEE's values can never be evidence of this one
            by_kind.setdefault(ref.kind, []).append(ref)
    findings: list[Finding] = []
    matched: list[ReferenceValue] = []
    known = known_kind_set()
    claims = claim_of or {}
    for kind in sorted(set(required) | set(by_kind), key=_kind_order):
        claim = claims.get(kind, Claim.EXECUTABLES)
        finding, values = _check_kind(kind, claim, actual.get(kind), by_kind.get(kind, []), known)
        if finding is not None:
            findings.append(finding)
        matched.extend(values)
    return findings, matched


def _check_kind(
    kind: str, claim: Claim, value: str | None, candidates: Sequence[ReferenceValue], known: frozenset[str]
) -> tuple[Finding | None, Sequence[ReferenceValue]]:
    """One kind of `check_references`: (None, the values that matched) or (the finding, ()). `value`: the claim's
    actual value (None: the evidence has none); `candidates`: the reference values of that kind."""
    if value is None:
        return (
            Finding(
                code="CLAIM_MISSING",
                claim=claim,
                value=CONTRAINDICATED,
                message=f"the evidence has no value for required {kind}",
                expected=kind,
                actual="absent",
            ),
            (),
        )
    if not candidates:
        return (
            Finding(
                code="REFERENCE_VALUE_MISSING",
                claim=claim,
                value=CONTRAINDICATED,
                message=f"the policy requires {kind} but no active reference value of that kind is registered",
                expected=f"an active {kind} reference value",
                actual=value,
            ),
            (),
        )
    if kind not in known:
        return _mismatch(kind, claim, f"{kind} is not a kind this verifier can compare", "a known kind", value), ()
    values = [ref.value for ref in candidates]
    if satisfied(kind, values, value):
        if spec(kind).match == "equal":
            return None, [ref for ref in candidates if holds(kind, ref.value, value)]
        return None, candidates
    how = "matches no active reference value" if spec(kind).match == "equal" else "fails a reference constraint"
    return _mismatch(kind, claim, f"{kind} {how}", expected_text(kind, values, value), actual_text(kind, value)), ()


def _mismatch(kind: str, claim: Claim, message: str, expected: str, actual: str) -> Finding:
    return Finding(
        code="REFERENCE_VALUE_MISMATCH",
        claim=claim,
        value=CONTRAINDICATED,
        message=message,
        expected=expected,
        actual=actual,
    )


@functools.lru_cache(maxsize=1024)  # a few dozen kinds exist; bounded all the same (kinds come from the database)
def _kind_order(kind: str) -> tuple[str, int, str]:
    head, _, tail = kind.rpartition(".")
    digits = "".join(ch for ch in tail if ch.isdigit())
    return (head, int(digits) if digits else -1, tail)
