"""The content memos (verified signatures, `verifier/trust/signature_memo.py`; parsed evidence, `verifier/tee/
parse_memo.py`) never change an outcome: the TEE verifier's answer on mutated real evidence, with the memos warm from
the genuine vector and from every earlier example, is exactly its answer with every memo emptied first (the failure's
code, the claims, incompleteness). A memo that answered for bytes it was not filled with would show here as a
mutated report verifying like the genuine one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from tests.property.fuzz_support import TEES, Vector, focus_range, fuzz_settings, load_vectors, mutate
from verifier.appraisal.registry import get_verifier
from verifier.tee.base import VerifyContext
from verifier.tee.nitro import evidence as nitro_evidence
from verifier.tee.sevsnp import evidence as snp_evidence
from verifier.tee.tdx import evidence as tdx_evidence
from verifier.trust import signature_memo
from verifier.trust.anchors import TrustAnchors

VECTORS = [v for v in load_vectors() if v.tee in ("nitro", "snp", "tdx") and v.tee in TEES]
ANCHORS = TrustAnchors()
PARSE_MEMOS = (nitro_evidence._PARSED, snp_evidence._PARSED, tdx_evidence._PARSED)


def _outcome(vector: Vector, evidence: bytes) -> tuple[Any, ...]:
    """What verification concluded, with a fresh verifier (its own links and collateral memos: empty)."""
    verifier = type(get_verifier(vector.tee))()
    context = VerifyContext(at=vector.verify_at, anchors=ANCHORS, collateral=vector.collateral, check_crl=False)
    verified = verifier.verify(evidence, context)
    failure = verified.failure
    return (
        None if failure is None else (type(failure).__name__, failure.code),
        verified.incomplete,
        repr(sorted(verified.claims.items())),
    )


def _empty_memos() -> None:
    signature_memo.clear()
    for memo in PARSE_MEMOS:
        memo.clear()


@pytest.mark.skipif(not VECTORS, reason="needs the shared vectors (VERIFIER_VECTORS)")
@fuzz_settings(150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_evidence_verifies_the_same_with_warm_and_with_empty_memos(data: st.DataObject) -> None:
    vector = data.draw(st.sampled_from(VECTORS), label="vector")
    evidence = mutate(data.draw, vector.evidence, focus=focus_range(vector.tee, vector.evidence))
    _outcome(vector, vector.evidence)  # the genuine vector's signature and parse are in the memos now
    warm = _outcome(vector, evidence)
    _empty_memos()
    cold = _outcome(vector, evidence)
    assert warm == cold, f"{vector.id}: the memos changed the outcome"


@pytest.mark.skipif(not VECTORS, reason="needs the shared vectors (VERIFIER_VECTORS)")
def test_every_genuine_vector_verifies_the_same_with_warm_and_with_empty_memos() -> None:
    for vector in VECTORS:
        _empty_memos()
        cold = _outcome(vector, vector.evidence)
        assert _outcome(vector, vector.evidence) == cold, vector.id
