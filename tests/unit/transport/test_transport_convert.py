"""proto <-> domain conversion."""

from __future__ import annotations

import datetime as dt

import pytest

from verifier.appraisal.model import Appraisal, Claim, Finding, Tier, TrustVector
from verifier.errors import RequestError
from verifier.reference_values.model import ReferenceValue
from verifier.service import AppraisalResult
from verifier.transport.grpc import convert
from verifier.v1 import verifier_pb2 as pb

AT = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_request_empty_bytes_mean_absent() -> None:
    request = convert.appraisal_request(
        pb.AppraiseRequest(
            kind=pb.EVIDENCE_KIND_SEV_SNP, evidence=b"e", collateral=[pb.CollateralFile(name="vcek.pem", content=b"c")]
        ),
        request_id="r",
    )
    assert (request.tee, request.evidence, dict(request.collateral)) == ("snp", b"e", {"vcek.pem": b"c"})
    assert request.nonce is None and request.runtime_data is None and request.policy is None
    assert request.request_id == "r"
    full = convert.appraisal_request(
        pb.AppraiseRequest(
            kind=pb.EVIDENCE_KIND_TDX, evidence=b"e", nonce=b"n" * 8, runtime_data=b"k", policy="strict"
        ),
        request_id=None,
    )
    assert (full.tee, full.nonce, full.runtime_data, full.policy) == ("tdx", b"n" * 8, b"k", "strict")


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (pb.AppraiseRequest(evidence=b"x"), "EVIDENCE_KIND_UNSPECIFIED"),
        (pb.AppraiseRequest(kind=99, evidence=b"x"), "EVIDENCE_KIND_UNKNOWN"),  # type: ignore[arg-type]
        (pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO), "EVIDENCE_EMPTY"),
        (
            pb.AppraiseRequest(
                kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x", collateral=[pb.CollateralFile(name="../etc/passwd")]
            ),
            "COLLATERAL_NAME_INVALID",
        ),
        (
            pb.AppraiseRequest(
                kind=pb.EVIDENCE_KIND_NITRO,
                evidence=b"x",
                collateral=[pb.CollateralFile(name="a"), pb.CollateralFile(name="a")],
            ),
            "COLLATERAL_DUPLICATE",
        ),
    ],
)
def test_malformed_requests(message: pb.AppraiseRequest, code: str) -> None:
    with pytest.raises(RequestError) as info:
        convert.appraisal_request(message, request_id=None)
    assert info.value.code == code


@pytest.mark.parametrize("policy", ["a\x00b", "\x00", "bad\nname", " padded", "x" * 101, "tab\there"])
def test_policy_names_that_storage_or_logs_cannot_carry(policy: str) -> None:
    """A NUL in the policy name reached the PostgreSQL policy lookup and crashed the call (INTERNAL)."""
    with pytest.raises(RequestError) as info:
        convert.appraisal_request(
            pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x", policy=policy), request_id=None
        )
    assert info.value.code == "POLICY_NAME_INVALID"
    ok = convert.appraisal_request(
        pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x", policy="team a/strict-v2"), request_id=None
    )
    assert ok.policy == "team a/strict-v2"


@pytest.mark.parametrize("name", ["vcek\x00.pem", "a\nb", "x" * 201, " vcek.pem"])
def test_collateral_names_that_storage_cannot_carry(name: str) -> None:
    with pytest.raises(RequestError) as info:
        convert.appraisal_request(
            pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x", collateral=[pb.CollateralFile(name=name)]),
            request_id=None,
        )
    assert info.value.code == "COLLATERAL_NAME_INVALID"


def test_claims_struct_is_json_shaped() -> None:
    struct = convert.claims_struct(
        {
            "pcrs": {0: "aa", 1: "bb"},
            "timestamp": 1_700_000_000_123,
            "user_data": b"\x01\x02",
            "absent": None,
            "big": 2**64,
            "list": (1, "x"),
            "at": AT,
            "tier": Tier.WARNING,
        }
    )
    assert struct["pcrs"]["0"] == "aa"
    assert struct["timestamp"] == 1_700_000_000_123  # exact in a double
    assert struct["user_data"] == "0102"
    assert struct["absent"] is None
    assert struct["big"] == str(2**64)
    assert list(struct["list"]) == [1, "x"]
    assert struct["at"] == "2025-01-02T03:04:05Z"
    assert struct["tier"] == "warning"


def test_appraise_response() -> None:
    finding = Finding("PCR_MISMATCH", Claim.EXECUTABLES, 33, "m", expected="aa", actual="bb")
    appraisal = Appraisal(
        tee="nitro",
        status=Tier.WARNING,
        trust_vector=TrustVector({Claim.EXECUTABLES: 33, Claim.HARDWARE: 2}),
        claims={"module_id": "i-1"},
        findings=(finding,),
        policy_id="default",
    )
    response = convert.appraise_response(AppraisalResult(appraisal, "tok", "jti", "id-1", AT))
    assert response.status == pb.STATUS_WARNING
    assert dict(response.trust_vector) == {"executables": 33, "hardware": 2}
    (f,) = response.findings
    assert (f.code, f.tier, f.claim, f.value, f.expected, f.actual, f.message) == (
        "PCR_MISMATCH",
        pb.STATUS_WARNING,
        "executables",
        33,
        "aa",
        "bb",
        "m",
    )
    assert response.claims["module_id"] == "i-1"
    assert (response.token, response.appraisal_id, response.tee, response.policy_id) == (
        "tok",
        "id-1",
        "nitro",
        "default",
    )
    assert convert.from_timestamp(response.appraised_at) == AT


def test_reference_value_states_and_optional_timestamps() -> None:
    ref = ReferenceValue("id", "nitro.pcr0", b"\xab" * 48, "l", created_at=AT)
    msg = convert.reference_value(ref, at=AT)
    assert (msg.value, msg.state, msg.revoke_reason) == ("ab" * 48, "active", "")
    assert not msg.HasField("expires_at") and not msg.HasField("revoked_at")
    gone = ReferenceValue(
        "id",
        "nitro.pcr0",
        b"\x00",
        "l",
        created_at=AT,
        expires_at=AT + dt.timedelta(days=1),
        revoked_at=AT,
        revoke_reason="bad",
    )
    msg = convert.reference_value(gone, at=AT)
    assert msg.state == "revoked" and msg.revoke_reason == "bad"
    assert convert.from_timestamp(msg.expires_at) == AT + dt.timedelta(days=1)


def test_timestamps_outside_the_protobuf_range_are_invalid_arguments() -> None:
    import pytest
    from google.protobuf.timestamp_pb2 import Timestamp

    from verifier.errors import RequestError
    from verifier.transport.grpc.convert import from_timestamp

    for ts in (
        Timestamp(seconds=2**62),
        Timestamp(seconds=253402300800),
        Timestamp(seconds=0, nanos=10**9),
        Timestamp(seconds=0, nanos=-1),
        Timestamp(seconds=-62135596801),
    ):
        with pytest.raises(RequestError) as error:
            from_timestamp(ts)
        assert error.value.code == "TIMESTAMP_INVALID"
