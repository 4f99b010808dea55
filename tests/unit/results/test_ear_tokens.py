"""Issue 14 item 3: the EAR as draft-ietf-rats-ear-04 defines it, checked from outside.

Every token of every shared vector (Nitro, SEV-SNP, TDX, NVIDIA GPU; plain and with a long nonce / runtime-data
mismatch) is under 8 KB, passes the schema transcribed from the draft's CDDL (tests/unit/results/ear_schema.py; no EAR
implementation is installable here), verifies with joserfc, jwcrypto and PyJWT against the published JWKS (ES256,
`typ` eat+jwt) and with verifier.client; a synthetic worst case (many long findings, many workloads, a 32-PCR
document, an RSA `cnf`) is too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from jwcrypto.jws import InvalidJWSSignature

from tests.conftest import manifest_vectors, vector_ids
from tests.unit.results.ear_schema import check_ear
from tests.unit.results.jose_check import all_agree, with_jwcrypto, with_pyjwt
from verifier.appraisal.model import Appraisal, Claim, Finding, Tier, TrustVector
from verifier.bootstrap import build_app
from verifier.client import ResultError, verify_result
from verifier.clock import FixedClock, parse_rfc3339
from verifier.requests import AppraisalRequest, AppraisalResult
from verifier.results.ear import build_ear
from verifier.results.ear_size import TOKEN_LIMIT
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.settings import Settings
from verifier.storage.migrate import upgrade

TEES = ("nitro", "snp", "tdx", "gpu")
VECTORS = [v for tee in TEES for v in manifest_vectors(tee)]
IDS = [i for tee in TEES for i in vector_ids(tee)]
SIGNER = ResultSigner([ephemeral_key()])
WRONG_NONCE = bytes(range(64))  # the longest eat_nonce the draft allows, and not the evidence's
RUNTIME_DATA = b"\xa5" * 4096  # the API's largest: every mismatch finding then carries 8 KB of hex


@pytest.fixture(scope="module")
def appraise(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., AppraisalResult]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ear') / 'verifier.db'}"
    upgrade(url)

    def run(vector: dict[str, Any], vectors_dir: Path, anchors: Path, **fields: Any) -> AppraisalResult:
        folder = vectors_dir / vector["dir"]
        collateral = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "evidence.bin"}
        settings = Settings(database_url=url, development=True, offline=True, trust_anchors=anchors)
        at = parse_rfc3339(vector["verify_at"])
        components = build_app(settings, clock=FixedClock(at), signer=SIGNER)
        components.service.operator_policy = True
        try:
            request = AppraisalRequest(
                tee=vector["tee"], evidence=(folder / "evidence.bin").read_bytes(), collateral=collateral, **fields
            )
            return components.service.appraise(request, allow_incomplete=True)
        finally:
            components.close()

    return run


def _checked(token: str, nonce: bytes | None, at: datetime) -> dict[str, Any]:
    """The claims, once the token is small, verified by three JOSE libraries and verifier.client, and an EAR."""
    assert len(token) < TOKEN_LIMIT, len(token)
    claims = all_agree(token, SIGNER.jwks())
    check_ear(claims)
    result = verify_result(token, SIGNER.jwks(), expected_nonce=nonce, required_status="none", now=at)
    assert result.raw == claims and result.submod_status == claims["submods"][result.tee]["ear_status"]
    return claims


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_vector_gives_a_small_standard_ear(
    appraise: Callable[..., AppraisalResult], vector: dict[str, Any], vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    at = parse_rfc3339(vector["verify_at"])
    plain = appraise(vector, vectors_dir, trust_anchors_dir)
    claims = _checked(plain.token, None, at)
    submod = claims["submods"][vector["tee"]]
    assert set(submod) <= {
        "ear_status",
        "ear_trustworthiness_vector",
        "ear_appraisal_policy_ids",
        "ear_attester_claims",
        "ear_verifier_claims",
    }
    attester = submod.get("ear_attester_claims", {})
    for name, value in plain.appraisal.claims.items():  # long byte values travel as their SHA-256
        if isinstance(value, str) and len(value) > 128:
            assert name not in attester
            assert attester[f"{name}_sha256"] == hashlib.sha256(bytes.fromhex(value)).hexdigest(), name
    worst = appraise(vector, vectors_dir, trust_anchors_dir, nonce=WRONG_NONCE, runtime_data=RUNTIME_DATA)
    claims = _checked(worst.token, WRONG_NONCE, at)
    assert base64.urlsafe_b64decode(claims["eat_nonce"] + "==") == WRONG_NONCE


def test_nitro_documents_no_longer_carry_kilobytes_of_hex(
    appraise: Callable[..., AppraisalResult], vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    vector = next(v for v in manifest_vectors("nitro") if v["id"] == "nitro-prod-2024-blocky")
    result = appraise(vector, vectors_dir, trust_anchors_dir)
    assert len(result.appraisal.claims["public_key"]) == 2048  # 1 KB in the document
    assert len(result.token) < 6000  # 12.7 KB when the hex travelled
    attester = _checked(result.token, None, parse_rfc3339(vector["verify_at"]))["submods"]["nitro"][
        "ear_attester_claims"
    ]
    assert {"nonce_sha256", "user_data_sha256", "public_key_sha256"} <= set(attester)
    assert {"nonce", "user_data", "public_key"}.isdisjoint(attester)
    assert attester["pcrs"] == result.appraisal.claims["pcrs"]  # fixed-size measurements stay as they are


def _worst_appraisal() -> Appraisal:
    long_hex = "ab" * 4096
    findings = tuple(
        Finding(f"CODE_{i:02d}", list(Claim)[i % 8], 96, "m", expected=long_hex, actual=f"{i:02x}" * 700)
        for i in range(40)
    )
    workloads = tuple(
        {
            "name": f"workload-{i}",
            "version": f"1.{i}.0",
            "id": f"{i:08d}-0000-4000-8000-000000000000",
            "policy": "strict-production-policy",
            "status": "contraindicated",
        }
        for i in range(6)
    )
    collateral = tuple(
        {
            "item": item,
            "number": 17,
            "issued": "2025-06-01T00:00:00Z",
            "next_update": "2025-07-01T00:00:00Z",
            "source": "cache",
        }
        for item in ("tdx.tcb_info", "tdx.qe_identity", "tdx.pck_crl", "tdx.root_ca_crl", "amd.crl", "amd.vcek", "x")
    )
    claims = {
        "pcrs": {str(i): f"{i:02x}" * 48 for i in range(32)},
        "module_id": "i-0123456789abcdef0-enc0123456789abcdef",
        "user_data": "cd" * 512,
        "public_key": "ef" * 1024,
        "nonce": "01" * 1024,
    }
    return Appraisal(
        tee="nitro",
        status=Tier.CONTRAINDICATED,
        trust_vector=TrustVector(dict.fromkeys(Claim, 96)),
        claims=claims,
        findings=findings,
        policy_id="p" * 100,
        matched_reference_values=tuple(f"nitro.pcr{i}:workload-{i}:{i:032x}" for i in range(32)),
        collateral=collateral,
        revocation="not-applicable",
        workload=workloads[0],
        workloads=workloads,
    )


def test_the_worst_case_stays_under_8_kb_and_says_what_it_cut() -> None:
    issued = datetime(2026, 1, 1, tzinfo=UTC)
    rsa_jwk = {"kty": "RSA", "e": "AQAB", "n": "x" * 683}  # a 4096-bit modulus
    claims = build_ear(
        _worst_appraisal(),
        issuer="https://verifier.attestation.example.internal/tenants/acme",
        issued_at=issued,
        lifetime=timedelta(minutes=5),
        nonce=b"\x07" * 1024,  # longer than eat_nonce allows: named by its SHA-256
        token_id="0" * 32,
        verifier_build="0.1.0+g0123456789ab",
        cnf_jwk=rsa_jwk,
        policy_sha256="f" * 64,
        reference_set_version=123456,
    )
    token = SIGNER.sign(claims)
    assert len(token) < TOKEN_LIMIT, len(token)
    check_ear(all_agree(token, SIGNER.jwks()))
    extra = claims["submods"]["nitro"]["ear_verifier_claims"]
    assert extra["abridged"] == ["finding_details", "matched_reference_values", "attester_claims", "findings"]
    assert extra["findings_omitted"] == 24 and len(extra["findings"]) == 16
    assert extra["findings"][0] == {"code": "CODE_00", "tier": "contraindicated", "claim": "instance-identity"}
    assert "eat_nonce" not in claims and extra["nonce_sha256"] == hashlib.sha256(b"\x07" * 1024).hexdigest()
    # What relying parties and the broker use is never cut.
    result = verify_result(
        token,
        SIGNER.jwks(),
        expected_nonce=b"\x07" * 1024,
        required_status="none",
        now=issued,
        required_workload="workload-5",
        allowed_policies=["f" * 64],
    )
    assert result.cnf_jwk == rsa_jwk and result.workload is not None and result.workload["version"] == "1.5.0"
    assert len(result.workloads) == 6 and result.claims == {}
    with pytest.raises(ResultError) as caught:
        verify_result(token, SIGNER.jwks(), expected_nonce=b"\x08" * 1024, required_status="none", now=issued)
    assert caught.value.code == "TOKEN_NONCE_MISMATCH"


def test_long_values_are_digested_even_when_the_token_is_small() -> None:
    appraisal = _worst_appraisal()
    small = Appraisal(
        tee="nitro",
        status=Tier.CONTRAINDICATED,
        trust_vector=appraisal.trust_vector,
        claims={"public_key": "ef" * 65, "note": "n" * 129, "list": ["ab" * 65, "short"], "report_data": "cd" * 64},
        findings=(Finding("NONCE_MISMATCH", Claim.INSTANCE_IDENTITY, 96, "m", expected="aa" * 65, actual="absent"),),
        policy_id="default",
    )
    claims = build_ear(
        small,
        issuer="i",
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        lifetime=timedelta(minutes=5),
        nonce=None,
        token_id="t",
        verifier_build="b",
    )
    submod = claims["submods"]["nitro"]
    assert submod["ear_attester_claims"] == {
        "public_key_sha256": hashlib.sha256(b"\xef" * 65).hexdigest(),  # hex: the digest of the bytes
        "note_sha256": hashlib.sha256(b"n" * 129).hexdigest(),  # text: the digest of its UTF-8
        "list": ["sha256:" + hashlib.sha256(b"\xab" * 65).hexdigest(), "short"],
        "report_data": "cd" * 64,  # 64 bytes: kept
    }
    assert submod["ear_verifier_claims"]["findings"] == [
        {
            "code": "NONCE_MISMATCH",
            "tier": "contraindicated",
            "claim": "instance-identity",
            "expected_sha256": hashlib.sha256(b"\xaa" * 65).hexdigest(),
            "actual": "absent",
        }
    ]
    assert "abridged" not in submod["ear_verifier_claims"]


def test_each_library_refuses_a_tampered_or_retyped_token() -> None:
    appraisal = _worst_appraisal()
    claims = build_ear(
        appraisal,
        issuer="i",
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        lifetime=timedelta(minutes=5),
        nonce=None,
        token_id="t",
        verifier_build="b",
    )
    header, payload, signature = SIGNER.sign(claims).split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "ES256", "typ": "eat+jwt", "kid": SIGNER.kid}
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["submods"]["nitro"]["ear_status"] = "affirming"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidJWSSignature):
        with_jwcrypto(f"{header}.{forged}.{signature}", SIGNER.jwks())
    with pytest.raises(pyjwt.InvalidSignatureError):
        with_pyjwt(f"{header}.{forged}.{signature}", SIGNER.jwks())
    retyped = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "typ": "JWT", "kid": SIGNER.kid}).encode())
    with pytest.raises(ResultError) as caught:
        verify_result(f"{retyped.rstrip(b'=').decode()}.{payload}.{signature}", SIGNER.jwks(), required_status="none")
    assert caught.value.code == "TOKEN_MALFORMED" and caught.value.expected == "eat+jwt"
