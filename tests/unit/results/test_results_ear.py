from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from verifier.appraisal.model import (
    AFFIRMING,
    WARNING_UNSAFE,
    Appraisal,
    Claim,
    Finding,
    Tier,
    combine,
)
from verifier.results.ear import DEFAULT_LIFETIME, EAR_PROFILE, build_ear

ISSUED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def make_appraisal() -> Appraisal:
    findings = (
        Finding("SNP_TCB_OUTDATED", Claim.HARDWARE, WARNING_UNSAFE, "TCB below minimum", expected="07", actual="03"),
    )
    vector = combine({Claim.HARDWARE: AFFIRMING, Claim.EXECUTABLES: AFFIRMING}, list(findings))
    return Appraisal(
        tee="sev-snp",
        status=vector.status,
        trust_vector=vector,
        claims={"measurement": "ab" * 48, "policy": {"debug": False}},
        findings=findings,
        policy_id="policy:snp/default@3",
        matched_reference_values=("rv:snp-measurement/7",),
    )


def ear(nonce: bytes | None = b"0123456789abcdef") -> dict[str, object]:
    return build_ear(
        make_appraisal(),
        issuer="https://verifier.example",
        issued_at=ISSUED,
        lifetime=DEFAULT_LIFETIME,
        nonce=nonce,
        token_id="tok-1",
        verifier_build="1.2.3+abc",
    )


def test_required_claims_and_submodule() -> None:
    claims = ear()
    iat = int(ISSUED.timestamp())
    assert claims["eat_profile"] == EAR_PROFILE == "tag:ietf.org,2026:rats/ear#04"
    assert claims["iat"] == iat
    assert claims["exp"] == iat + 300
    assert claims["iss"] == "https://verifier.example"
    assert claims["jti"] == "tok-1"
    assert claims["ear_verifier_id"] == {"developer": "tee-verifier", "build": "1.2.3+abc"}
    assert claims["ear_status"] == Tier.WARNING.value
    assert claims["eat_nonce"] == base64.urlsafe_b64encode(b"0123456789abcdef").rstrip(b"=").decode()
    sub = claims["submods"]["sev-snp"]  # type: ignore[index]
    assert sub["ear_status"] == "warning"
    assert sub["ear_trustworthiness_vector"] == {"executables": AFFIRMING, "hardware": WARNING_UNSAFE}
    assert sub["ear_appraisal_policy_ids"] == ["policy:snp/default@3"]
    assert sub["ear_attester_claims"] == {"measurement": "ab" * 48, "policy": {"debug": False}}
    assert sub["ear_verifier_claims"] == {
        "findings": [
            {"code": "SNP_TCB_OUTDATED", "tier": "warning", "claim": "hardware", "expected": "07", "actual": "03"}
        ],
        "matched_reference_values": ["rv:snp-measurement/7"],
    }
    assert not [k for k in sub if k.startswith("x-") or "." in k]  # no loose private claims (draft s4)


def test_no_nonce_no_eat_nonce() -> None:
    assert "eat_nonce" not in ear(nonce=None)


def test_nonce_has_no_padding() -> None:
    assert "=" not in ear(nonce=b"\x00" * 32)["eat_nonce"]  # type: ignore[operator]


def test_deterministic_json() -> None:
    assert json.dumps(ear()) == json.dumps(ear())


def test_annotated_evidence_is_detached_copy() -> None:
    appraisal = make_appraisal()
    claims = build_ear(
        appraisal,
        issuer="i",
        issued_at=ISSUED,
        lifetime=timedelta(seconds=60),
        nonce=None,
        token_id="t",
        verifier_build="b",
    )
    appraisal.claims["measurement"] = "changed"
    assert claims["submods"]["sev-snp"]["ear_attester_claims"]["measurement"] == "ab" * 48


def test_rejects_naive_time_and_non_positive_lifetime() -> None:
    with pytest.raises(ValueError):
        build_ear(
            make_appraisal(),
            issuer="i",
            issued_at=datetime(2024, 1, 1),
            lifetime=DEFAULT_LIFETIME,
            nonce=None,
            token_id="t",
            verifier_build="b",
        )
    with pytest.raises(ValueError):
        build_ear(
            make_appraisal(),
            issuer="i",
            issued_at=ISSUED,
            lifetime=timedelta(0),
            nonce=None,
            token_id="t",
            verifier_build="b",
        )
