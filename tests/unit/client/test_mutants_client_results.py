"""Tests for mutants that survived (or were not covered by) scripts/mutation.py in verifier/client/results.py: the
relying party's checks of the token's claims, of the JWKS entry its kid names, and of the ES256 signature.

Tokens are signed by hand (`sign_raw`) where the project's signer cannot produce the input: an arbitrary header, a
payload JSON with NaN/Infinity, a non-canonical signature encoding."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.unit.client.test_client_results import ISSUED, NONCE, b64, check, claims, rejected
from verifier.client.results import verify_result
from verifier.results.keys import SigningKey, ephemeral_key, public_jwk

KEY = ephemeral_key()
JWKS = {"keys": [public_jwk(KEY)]}


def header(**members: Any) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "eat+jwt", "kid": KEY.kid, **members}


def raw_signature(key: SigningKey, signing_input: str) -> tuple[bytes, bytes]:
    r, s = decode_dss_signature(key.private_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big"), s.to_bytes(32, "big")


def sign_raw(payload: dict[str, Any], head: dict[str, Any] | None = None, key: SigningKey = KEY) -> str:
    """A compact ES256 JWS of `payload` (json.dumps: NaN and Infinity allowed) under `head`, signed by `key`."""
    signing_input = f"{b64(json.dumps(head or header()).encode())}.{b64(json.dumps(payload).encode())}"
    r, s = raw_signature(key, signing_input)
    return f"{signing_input}.{b64(r + s)}"


def with_key(**members: Any) -> dict[str, Any]:
    """JWKS whose only entry is KEY's public JWK with `members` set (None: removed)."""
    jwk = {**public_jwk(KEY), **members}
    return {"keys": [{k: v for k, v in jwk.items() if v is not None}]}


def with_submod(**members: Any) -> dict[str, Any]:
    payload = claims()
    payload["submods"]["nitro"].update(members)
    return payload


def with_verifier_claims(**members: Any) -> dict[str, Any]:
    payload = claims()
    payload["submods"]["nitro"]["ear_verifier_claims"].update(members)
    return payload


def with_workloads(*workloads: tuple[str, str]) -> dict[str, Any]:
    """claims() (top level and submodule affirming) whose matched workloads are (name, status) pairs."""
    return with_verifier_claims(
        workloads=[
            {"name": name, "version": "1", "id": name, "policy": "default", "status": status}
            for name, status in workloads
        ]
    )


def test_the_hand_signed_control_token_passes() -> None:
    result = check(sign_raw(claims()), JWKS)
    assert (result.status, result.tee, result.kid) == ("affirming", "nitro", KEY.kid)


# --- verify_result: `now`, time claims, status ----------------------------------------------------------------


def test_a_naive_now_is_refused_as_a_programming_error() -> None:
    naive = datetime(2024, 9, 7, 14, 37, 40)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_result(sign_raw(claims()), JWKS, expected_nonce=NONCE, now=naive)


@pytest.mark.parametrize("leeway", [timedelta(seconds=30), timedelta(seconds=10), timedelta(0)], ids=str)
def test_a_token_issued_exactly_leeway_in_the_future_is_accepted_and_a_microsecond_more_is_not(
    leeway: timedelta,
) -> None:
    token = sign_raw(claims())
    assert check(token, JWKS, now=ISSUED - leeway, leeway=leeway).issued_at == ISSUED
    error = rejected("TOKEN_NOT_YET_VALID", token, JWKS, now=ISSUED - leeway - timedelta(microseconds=1), leeway=leeway)
    assert error.actual == ISSUED.isoformat()


def test_nbf_exactly_leeway_in_the_future_is_accepted_and_a_microsecond_more_is_not() -> None:
    nbf = ISSUED + timedelta(seconds=60)
    token = sign_raw({**claims(), "nbf": int(nbf.timestamp())})
    leeway = timedelta(seconds=30)
    assert check(token, JWKS, now=nbf - leeway, leeway=leeway).status == "affirming"
    rejected("TOKEN_NOT_YET_VALID", token, JWKS, now=nbf - leeway - timedelta(microseconds=1), leeway=leeway)


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
@pytest.mark.parametrize("value", [1e20, -1e20, 10**20, float("inf"), float("-inf"), float("nan")], ids=repr)
def test_a_time_claim_out_of_range_is_malformed(claim: str, value: float) -> None:
    token = sign_raw({**claims(), claim: value})
    error = rejected("TOKEN_MALFORMED", token, JWKS)
    assert error.message == f"the {claim} claim is out of range"


@pytest.mark.parametrize("status", ["bogus", "AFFIRMING", "", 3, None, True], ids=repr)
def test_a_top_level_status_that_is_not_an_ear_tier_is_malformed(status: Any) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw({**claims(), "ear_status": status}), JWKS)
    assert error.message == "ear_status is not an EAR tier"


def test_a_submodule_without_a_tier_is_malformed() -> None:
    payload = claims()
    del payload["submods"]["nitro"]["ear_status"]
    error = rejected("TOKEN_MALFORMED", sign_raw(payload), JWKS)
    assert error.message == "the submodule has no EAR tier (ear_status)"


@pytest.mark.parametrize("submod", ["affirming", None, ["affirming"], 3, {"ear_status": "bogus"}], ids=repr)
def test_a_submodule_that_is_not_an_object_with_a_tier_is_malformed(submod: Any) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw({**claims(), "submods": {"nitro": submod}}), JWKS)
    assert error.message == "the submodule has no EAR tier (ear_status)"


# --- workloads --------------------------------------------------------------------------------------------------

GOOD_WORKLOAD = {"name": "app 1", "version": "1", "id": "app 1", "policy": "default", "status": "affirming"}


@pytest.mark.parametrize(
    "value",
    [
        "app 1",
        GOOD_WORKLOAD,
        [1],
        [None],
        ["app 1"],
        [{**GOOD_WORKLOAD, "name": 1}],
        [{**GOOD_WORKLOAD, "name": None}],
        [{k: v for k, v in GOOD_WORKLOAD.items() if k != "name"}],
        [{**GOOD_WORKLOAD, "version": 1}],
        [{k: v for k, v in GOOD_WORKLOAD.items() if k != "version"}],
        [{**GOOD_WORKLOAD, "status": "bogus"}],
        [{k: v for k, v in GOOD_WORKLOAD.items() if k != "status"}],
        [GOOD_WORKLOAD, {**GOOD_WORKLOAD, "name": "app 2", "version": 2}],
    ],
    ids=[
        "string",
        "object",
        "int-entry",
        "null-entry",
        "string-entry",
        "name-int",
        "name-null",
        "name-missing",
        "version-int",
        "version-missing",
        "status-bogus",
        "status-missing",
        "second-entry-bad",
    ],
)
@pytest.mark.parametrize("required", [None, "app 1"], ids=["any", "app-1"])
def test_workloads_that_are_not_a_list_of_workload_versions_are_malformed(value: Any, required: str | None) -> None:
    token = sign_raw(with_verifier_claims(workloads=value))
    error = rejected("TOKEN_MALFORMED", token, JWKS, required_workload=required)
    assert error.message == "ear_verifier_claims.workloads is not a list of workload versions"


def test_well_formed_workloads_are_returned() -> None:
    token = sign_raw(with_verifier_claims(workloads=[GOOD_WORKLOAD]))
    result = check(token, JWKS, required_workload="app 1")
    assert result.workloads == (GOOD_WORKLOAD,) and result.workload == GOOD_WORKLOAD


@pytest.mark.parametrize(
    ("workloads", "actual"),
    [((("app 1", "affirming"), ("base", "affirming")), "app 1,base"), ((), "none")],
    ids=["others-matched", "none-matched"],
)
def test_a_workload_mismatch_names_the_workloads_that_did_match(
    workloads: tuple[tuple[str, str], ...], actual: str
) -> None:
    error = rejected("TOKEN_WORKLOAD_MISMATCH", sign_raw(with_workloads(*workloads)), JWKS, required_workload="app 2")
    assert (error.expected, error.actual) == ("app 2", actual)


@pytest.mark.parametrize(
    ("workload_status", "required"),
    [
        ("warning", "affirming"),
        ("contraindicated", "affirming"),
        ("none", "affirming"),
        ("contraindicated", "warning"),
        ("none", "warning"),
    ],
)
@pytest.mark.parametrize("min_version", [None, "1"], ids=["any-version", "min-1"])
def test_a_workload_below_the_required_status_is_refused_although_the_result_affirms(
    workload_status: str, required: str, min_version: str | None
) -> None:
    token = sign_raw(with_workloads(("app 1", workload_status)))
    error = rejected(
        "TOKEN_STATUS_INSUFFICIENT",
        token,
        JWKS,
        required_workload="app 1",
        required_status=required,
        min_version=min_version,
    )
    assert (error.expected, error.actual) == (required, workload_status)
    assert error.message == "workload app 1 is not good enough"


def test_a_workload_at_the_required_status_is_accepted() -> None:
    token = sign_raw(with_workloads(("app 1", "warning")))
    assert check(token, JWKS, required_workload="app 1", required_status="warning").workload["status"] == "warning"


# --- allowed policies -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy_id",
    ["cafe", "deadbeef", "0", "p" * 64, "g" + "a" * 63],
    ids=["short-hex", "8-hex", "one-digit", "64-non-hex", "64-almost-hex"],
)
def test_an_allowed_entry_that_is_not_64_hex_digits_names_a_policy_id(policy_id: str) -> None:
    token = sign_raw(with_submod(ear_appraisal_policy_ids=[policy_id]))
    assert check(token, JWKS, allowed_policies={policy_id}).policy_id == policy_id
    rejected("TOKEN_POLICY_NOT_ALLOWED", token, JWKS, allowed_policies={"default"})


def test_an_allowed_entry_of_64_hex_digits_names_a_policy_hash_not_an_id() -> None:
    digest = "ab" * 32
    by_id = sign_raw(with_submod(ear_appraisal_policy_ids=[digest]))
    rejected("TOKEN_POLICY_NOT_ALLOWED", by_id, JWKS, allowed_policies={digest})
    by_hash = sign_raw(with_verifier_claims(policy_sha256=digest))
    assert check(by_hash, JWKS, allowed_policies={digest.upper()}).policy_sha256 == digest


# --- the JWS: kid, JWKS entry, signature ------------------------------------------------------------------------


@pytest.mark.parametrize("kid", ["", 123, ["k"], None, False], ids=repr)
def test_a_kid_that_is_not_a_non_empty_string_is_refused_even_if_the_jwks_has_it(kid: Any) -> None:
    token = sign_raw(claims(), header(kid=kid))
    jwks = {"keys": [{**public_jwk(KEY), "kid": kid}]}
    error = rejected("TOKEN_KID_UNKNOWN", token, jwks)
    assert error.message == "the token has no kid"


@pytest.mark.parametrize("typ", ["eat+jwt", "EAT+JWT", "application/eat+jwt", "Application/EAT+JWT"])
def test_the_explicit_typ_passes_in_any_case_with_or_without_its_prefix(typ: str) -> None:
    assert check(sign_raw(claims(), header(typ=typ)), JWKS).kid == KEY.kid


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "eat+cwt", "application/jwt", "", None, 1, ["eat+jwt"]])
def test_any_other_typ_is_refused_though_the_signature_verifies(typ: Any) -> None:
    head = header(typ=typ) if typ is not None else {k: v for k, v in header().items() if k != "typ"}
    error = rejected("TOKEN_MALFORMED", sign_raw(claims(), head), JWKS)
    assert (error.message, error.expected) == ("the header's typ is not eat+jwt", "eat+jwt")


def test_a_token_without_kid_is_refused() -> None:
    head = {k: v for k, v in header().items() if k != "kid"}
    error = rejected("TOKEN_KID_UNKNOWN", sign_raw(claims(), head), JWKS)
    assert error.message == "the token has no kid"


@pytest.mark.parametrize(
    "members",
    [
        {},
        {"alg": None, "use": None},
        {"key_ops": ["verify"]},
        {"key_ops": ["sign", "verify"]},
        {"alg": "ES256", "use": "sig", "key_ops": ["verify"]},
    ],
    ids=["published", "bare", "key-ops-verify", "key-ops-sign-verify", "all-explicit"],
)
def test_an_es256_signing_jwk_verifies(members: dict[str, Any]) -> None:
    assert check(sign_raw(claims()), with_key(**members)).kid == KEY.kid


@pytest.mark.parametrize(
    "members",
    [
        {"kty": "OKP"},
        {"kty": "RSA"},
        {"kty": "ec"},
        {"kty": None},
        {"crv": "P-384"},
        {"crv": "secp256k1"},
        {"crv": "p-256"},
        {"crv": None},
        {"alg": "ES384"},
        {"alg": "ES256K"},
        {"use": "enc"},
        {"key_ops": "verify"},
        {"key_ops": {"verify": True}},
        {"key_ops": ["sign"]},
        {"key_ops": []},
    ],
    ids=lambda m: "-".join(f"{k}={v}" for k, v in m.items()),
)
def test_a_jwk_that_is_not_an_es256_signing_key_is_refused_though_its_point_verifies(
    members: dict[str, Any],
) -> None:
    error = rejected("TOKEN_KEY_INVALID", sign_raw(claims()), with_key(**members))
    assert error.message == "the key for this kid is not an ES256 signing key"


def coordinate(name: str) -> bytes:
    return base64.urlsafe_b64decode(public_jwk(KEY)[name] + "==")


@pytest.mark.parametrize("name", ["x", "y"])
@pytest.mark.parametrize(
    "encode",
    [
        lambda raw: b64(b"\0" + raw),  # the same integer, 33 bytes: not the RFC 7518 s6.2.1.2 encoding
        lambda raw: b64(raw[1:]),
        lambda raw: b64(raw + b"\0"),
        lambda raw: b64(raw) + "=",
        lambda raw: "!" + b64(raw)[1:],
        lambda raw: 5,
        lambda raw: None,
    ],
    ids=["leading-zero", "short", "trailing-zero", "padded", "not-base64url", "int", "missing"],
)
def test_a_jwk_coordinate_that_is_not_32_bytes_of_base64url_is_refused(name: str, encode: Any) -> None:
    error = rejected("TOKEN_KEY_INVALID", sign_raw(claims()), with_key(**{name: encode(coordinate(name))}))
    assert error.message == f"the JWK's {name} is not a 32-byte coordinate"


@pytest.mark.parametrize(
    ("x", "y"),
    [
        (b"\x01" * 32, b"\x01" * 32),
        (b"\0" * 32, b"\0" * 32),
        (b"\xff" * 32, b"\xff" * 32),  # coordinates beyond the field prime
        ("x", "x"),  # x twice: on the curve only if y == x, which it is not
    ],
    ids=["ones", "zeros", "beyond-prime", "x-for-y"],
)
def test_a_jwk_point_that_is_not_on_p256_is_refused(x: Any, y: Any) -> None:
    x_raw = coordinate(x) if isinstance(x, str) else x
    y_raw = coordinate(y) if isinstance(y, str) else y
    error = rejected("TOKEN_KEY_INVALID", sign_raw(claims()), with_key(x=b64(x_raw), y=b64(y_raw)))
    assert error.message == "the JWK's point is not on P-256"


def resigned(transform: Any) -> str:
    """A good token whose raw r||s signature is re-encoded by `transform(r, s)`."""
    head, payload, _ = sign_raw(claims()).split(".")
    r, s = raw_signature(KEY, f"{head}.{payload}")
    return f"{head}.{payload}.{b64(transform(r, s))}"


@pytest.mark.parametrize(
    "transform",
    [
        lambda r, s: r + b"\0" + s,  # s with a leading zero: 65 bytes whose halves would still verify
        lambda r, s: r + s + b"\0",
        lambda r, s: r + s[:-1],
        lambda r, s: r,
        lambda r, s: b"",
    ],
    ids=["s-leading-zero", "trailing-zero", "63-bytes", "r-only", "empty"],
)
def test_a_signature_that_is_not_64_bytes_is_refused(transform: Any) -> None:
    token = resigned(transform)
    length = len(base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "=="))
    error = rejected("TOKEN_SIGNATURE_INVALID", token, JWKS)
    assert (error.expected, error.actual) == ("64", str(length))
    assert check(resigned(lambda r, s: r + s), JWKS).kid == KEY.kid


# --- claim types ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [123, True, ["AQ"], {"n": "AQ"}, 1.5], ids=repr)
@pytest.mark.parametrize("expected", [NONCE, None], ids=["expected", "not-expected"])
def test_an_eat_nonce_that_is_not_a_string_is_malformed(value: Any, expected: bytes | None) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw({**claims(), "eat_nonce": value}), JWKS, expected_nonce=expected)
    assert error.message == "eat_nonce is not a base64url string"


@pytest.mark.parametrize(
    ("where", "member", "value", "what"),
    [
        ("top", "jti", 5, "jti"),
        ("top", "jti", None, "jti"),
        ("top", "iss", 5, "iss"),
        ("top", "iss", ["tee-verifier"], "iss"),
        ("verifier", "policy_sha256", 5, "ear_verifier_claims.policy_sha256"),
        ("verifier", "policy_sha256", ["ab" * 32], "ear_verifier_claims.policy_sha256"),
        ("submod", "ear_attester_claims", [], "ear_attester_claims"),
        ("submod", "ear_attester_claims", "i-1", "ear_attester_claims"),
    ],
    ids=lambda v: v if isinstance(v, str) and v not in ("top", "submod", "verifier") else None,
)
def test_a_claim_of_the_wrong_json_type_is_malformed(where: str, member: str, value: Any, what: str) -> None:
    if where == "top":
        payload = {**claims(), member: value}
    else:
        payload = with_submod(**{member: value}) if where == "submod" else with_verifier_claims(**{member: value})
    error = rejected("TOKEN_MALFORMED", sign_raw(payload), JWKS)
    assert error.message == f"{what} has the wrong JSON type"


@pytest.mark.parametrize("value", [5, None, "default", [5], ["default", 5], {"default": 1}], ids=repr)
def test_policy_ids_that_are_not_a_list_of_strings_are_malformed(value: Any) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw(with_submod(ear_appraisal_policy_ids=value)), JWKS)
    assert error.message == "ear_appraisal_policy_ids is not a list of strings"


def test_an_empty_policy_id_list_is_malformed_and_any_listed_id_may_be_allowed() -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw(with_submod(ear_appraisal_policy_ids=[])), JWKS)
    assert error.message == "ear_appraisal_policy_ids is empty"
    cascade = sign_raw(with_submod(ear_appraisal_policy_ids=["base", "strict"]))  # draft s3.1: applied in order
    result = check(cascade, JWKS, allowed_policies={"strict"})
    assert (result.policy_id, result.policy_ids) == ("base", ("base", "strict"))
    no_ids = claims()
    del no_ids["submods"]["nitro"]["ear_appraisal_policy_ids"]
    assert check(sign_raw(no_ids), JWKS).policy_id == ""


@pytest.mark.parametrize("value", ["x", "ab", [1], [None], ["finding"], {"code": "X"}, 5], ids=repr)
def test_findings_that_are_not_a_list_of_objects_are_malformed(value: Any) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw(with_verifier_claims(findings=value)), JWKS)
    assert error.message == "ear_verifier_claims.findings is not a list of objects"


def test_findings_that_are_objects_are_returned() -> None:
    finding = {"code": "X", "claim": "hardware", "value": 32, "message": "m"}
    assert check(sign_raw(with_verifier_claims(findings=[finding])), JWKS).findings == (finding,)


@pytest.mark.parametrize(
    "cnf",
    [{"jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}, {"kid": "k"}, {"jwk": "string"}, {"jwk": []}, "jwk", []],
    ids=["jkt", "kid", "jwk-string", "jwk-list", "string", "list"],
)
def test_a_cnf_that_is_not_a_jwk_confirmation_is_malformed(cnf: Any) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw({**claims(), "cnf": cnf}), JWKS)
    assert error.message == 'cnf is not a {"jwk": {...}} confirmation'
