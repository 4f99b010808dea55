"""The orchestrator end to end on a real database: fake AWS PKI evidence, reference values, challenges, EAR."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import Harness, make_harness
from verifier.appraisal.model import Tier
from verifier.errors import RequestError
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database


@pytest.fixture
def h(db: Database) -> Harness:
    return make_harness(db)


def codes(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.code for f in result.appraisal.findings]


def decode(h: Harness, token: str) -> dict:  # type: ignore[type-arg]
    keys = KeySet.import_key_set(h.service.jwks())  # type: ignore[arg-type]
    return dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)


def test_approved_measurements_affirm_and_token_verifies_independently(h: Harness) -> None:
    h.approve()
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert result.appraisal.status is Tier.AFFIRMING, codes(result)
    assert result.appraisal.findings == ()
    assert result.appraisal.trust_vector.to_json() == {
        "instance-identity": 2,
        "configuration": 2,
        "executables": 2,
        "hardware": 2,
    }
    claims = decode(h, result.token)
    assert claims["ear_status"] == "affirming"
    assert claims["iss"] == "test-verifier"
    assert claims["jti"] == result.token_id
    sub = claims["submods"]["nitro"]
    assert sub["ear_status"] == "affirming"
    assert sub["ear_appraisal_policy_ids"] == ["default"]
    assert sub["ear_attester_claims"]["pcrs"]["0"] == FakeAwsPki.default_pcrs()[0].hex()
    assert len(sub["ear_verifier_claims"]["matched_reference_values"]) == 3
    assert "eat_nonce" not in claims


def test_unknown_pcr0_is_contraindicated_with_expected_and_actual(h: Harness) -> None:
    h.approve()
    pcrs = FakeAwsPki.default_pcrs()
    pcrs[0] = b"\x42" * 48
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=pcrs)))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    finding, summary = result.appraisal.findings
    assert finding.code == "REFERENCE_VALUE_MISMATCH" and finding.message.startswith("test-image: nitro.pcr0")
    assert summary.code == "WORKLOAD_NOT_MATCHED"
    assert "matched: nitro.pcr1, nitro.pcr2; differs: nitro.pcr0" in summary.actual
    assert finding.actual == "42" * 48
    assert finding.expected == FakeAwsPki.default_pcrs()[0].hex()


def test_no_reference_values_registered_is_contraindicated(h: Harness) -> None:
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert codes(result) == ["REFERENCE_VALUE_MISSING"] * 3


def test_optional_pcr_checked_only_when_registered(h: Harness) -> None:
    h.approve()
    other = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    h.refs.add("nitro.pcr4", b"\x01" * 48, "instance", now=h.clock.now() - dt.timedelta(days=1))
    # Another workload's PCR4 says nothing about this one (workloads never mix)...
    assert (
        h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())).appraisal.status
        is other.appraisal.status
        is Tier.AFFIRMING
    )
    # ...a PCR4 of this workload is required of its evidence.
    h.refs.add("nitro.pcr4", b"\x01" * 48, "test-image", now=h.clock.now() - dt.timedelta(days=1))
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert codes(result) == ["REFERENCE_VALUE_MISMATCH", "WORKLOAD_NOT_MATCHED"]
    assert result.appraisal.findings[0].expected == "01" * 48


def test_debug_mode_is_contraindicated_even_when_zero_pcrs_are_registered(h: Harness) -> None:
    pcrs = FakeAwsPki.default_pcrs()
    for i in (0, 1, 2):
        pcrs[i] = bytes(48)
    h.approve(pcrs)
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=pcrs)))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert codes(result) == ["NITRO_DEBUG_MODE"]
    assert result.appraisal.trust_vector.to_json()["configuration"] == 96


def test_bad_signature_is_a_signed_negative_result_not_an_error(h: Harness) -> None:
    h.approve()
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(signature=b"\x01" * 96)))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert codes(result) == ["NITRO_SIGNATURE_INVALID"]
    assert result.appraisal.trust_vector.to_json() == {"instance-identity": 99}
    assert decode(h, result.token)["ear_status"] == "contraindicated"


def test_garbage_and_foreign_root_are_contraindicated(h: Harness) -> None:
    h.approve()
    garbage = h.service.appraise(AppraisalRequest(tee="nitro", evidence=b"\x84\x01"))
    assert garbage.appraisal.status is Tier.CONTRAINDICATED
    assert codes(garbage) == ["NITRO_CBOR_TRUNCATED"]
    assert garbage.appraisal.claims == {}
    foreign = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.foreign().mint()))
    assert codes(foreign) == ["CHAIN_ROOT_UNTRUSTED"]
    assert foreign.appraisal.trust_vector.to_json() == {"instance-identity": 97}


def test_expired_leaf_is_contraindicated(h: Harness) -> None:
    h.approve()
    evidence = h.pki.mint()
    h.clock.at = h.pki.not_after + dt.timedelta(seconds=1)
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    assert codes(result) == ["CERT_EXPIRED"]


def test_revoked_and_expired_reference_values_stop_affirming(h: Harness) -> None:
    h.approve()
    evidence = h.pki.mint()
    assert h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence)).appraisal.status is Tier.AFFIRMING
    pcr0 = next(r for r in h.refs.list(at=h.clock.now()) if r.kind == "nitro.pcr0")
    h.refs.revoke(pcr0.id, "image withdrawn", now=h.clock.now() - dt.timedelta(seconds=1))
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    assert codes(result) == ["REFERENCE_VALUE_MISSING", "WORKLOAD_NOT_MATCHED"]
    # Revocation is per value: the same PCR0 is added again only after an explicit, audited re-approval.
    h.refs.reapprove("nitro.pcr0", FakeAwsPki.default_pcrs()[0], "re-approved for this test", now=h.clock.now())
    h.refs.add(
        "nitro.pcr0",
        FakeAwsPki.default_pcrs()[0],
        "test-image",
        now=h.clock.now(),
        expires_at=h.clock.now() + dt.timedelta(minutes=1),
    )
    assert h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence)).appraisal.status is Tier.AFFIRMING
    h.clock.at += dt.timedelta(minutes=2)
    assert codes(h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))) == [
        "REFERENCE_VALUE_MISSING",
        "WORKLOAD_NOT_MATCHED",
    ]


def test_challenge_is_consumed_exactly_once(h: Harness) -> None:
    h.approve()
    challenge = h.service.create_challenge()
    assert len(challenge.nonce) == 32
    evidence = h.pki.mint(nonce=challenge.nonce)
    request = AppraisalRequest(tee="nitro", evidence=evidence, nonce=challenge.nonce)
    first = h.service.appraise(request, require_challenge=True)
    assert first.appraisal.status is Tier.AFFIRMING, codes(first)
    assert decode(h, first.token)["eat_nonce"]
    replay = h.service.appraise(request, require_challenge=True)
    assert replay.appraisal.status is Tier.CONTRAINDICATED
    assert codes(replay) == ["CHALLENGE_REPLAYED"]


def test_unknown_expired_and_mismatched_nonces(h: Harness) -> None:
    h.approve()
    unknown = b"\x07" * 32
    result = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=unknown), nonce=unknown), require_challenge=True
    )
    assert codes(result) == ["CHALLENGE_UNKNOWN"]
    challenge = h.service.create_challenge(16)
    h.clock.at += dt.timedelta(minutes=3)
    late = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=challenge.nonce), nonce=challenge.nonce),
        require_challenge=True,
    )
    assert codes(late) == ["CHALLENGE_EXPIRED"]
    other = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=b"\x01" * 16), nonce=b"\x02" * 16)
    )
    assert codes(other) == ["NONCE_MISMATCH"]
    assert other.appraisal.findings[0].expected == "02" * 16
    assert other.appraisal.findings[0].actual == "01" * 16


def test_runtime_data_must_match_public_key(h: Harness) -> None:
    h.approve()
    evidence = h.pki.mint(nonce=b"n" * 16, public_key=b"key-A")
    ok = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence, nonce=b"n" * 16, runtime_data=b"key-A"))
    assert ok.appraisal.status is Tier.AFFIRMING
    bad = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence, nonce=b"n" * 16, runtime_data=b"key-B"))
    assert codes(bad) == ["RUNTIME_DATA_MISMATCH"]


def test_nonce_required_policy(h: Harness) -> None:
    h.approve()
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(), policy="nonce-required"))
    assert codes(result) == ["NONCE_MISSING"]
    assert result.appraisal.policy_id == "nonce-required"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (AppraisalRequest(tee="nitro", evidence=b""), "EVIDENCE_EMPTY"),
        (AppraisalRequest(tee="sgx", evidence=b"x"), "EVIDENCE_KIND_UNSUPPORTED"),
        (AppraisalRequest(tee="nitro", evidence=b"x", policy="lenient"), "POLICY_UNKNOWN"),
        (AppraisalRequest(tee="nitro", evidence=b"x", nonce=b"1"), "NONCE_SIZE"),
        (AppraisalRequest(tee="nitro", evidence=b"x" * (1024 * 1024 + 1)), "EVIDENCE_TOO_LARGE"),
    ],
)
def test_malformed_requests_raise_request_errors(h: Harness, request_: AppraisalRequest, code: str) -> None:
    with pytest.raises(RequestError) as info:
        h.service.appraise(request_)
    assert info.value.code == code


def test_challenge_size_bounds(h: Harness) -> None:
    with pytest.raises(RequestError):
        h.service.create_challenge(65)
    assert len(h.service.create_challenge(64).nonce) == 64


def test_appraisal_is_recorded(h: Harness) -> None:
    h.approve()
    evidence = h.pki.mint()
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence, request_id="req-1"))
    row = h.appraisals.get(result.appraisal_id)
    assert row is not None
    assert row["status"] == "affirming"
    assert row["evidence_sha256"] == hashlib.sha256(evidence).hexdigest()
    assert row["token_id"] == result.token_id
    assert row["request_id"] == "req-1"


def test_bound_workload_key_is_carried_as_cnf(h: Harness) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    h.approve()
    key = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    challenge = h.service.create_challenge()
    evidence = h.pki.mint(nonce=challenge.nonce, public_key=key)
    ok = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=evidence, nonce=challenge.nonce, runtime_data=key),
        require_challenge=True,
    )
    claims = decode(h, ok.token)
    assert claims["cnf"]["jwk"]["kty"] == "EC" and claims["cnf"]["jwk"]["crv"] == "P-256"
    assert claims["submods"]["nitro"]["ear_verifier_claims"]["workload"]["name"] == "test-image"
    assert "matched_labels" not in claims["submods"]["nitro"]["ear_verifier_claims"]
    other = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    bad = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence, runtime_data=other))
    assert "cnf" not in decode(h, bad.token)  # the binding failed: no key is vouched for
    plain = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    assert decode(h, plain.token)["cnf"] == claims["cnf"]  # Nitro: the signed document's own public_key
