"""Issue 9 item 1: a `cnf` key only when the signed evidence covers it; policies a result must have, and that a
request may select.

Before the fix, under `"report_data_binding": "raw"` an SNP report whose REPORT_DATA is the padded nonce, sent with
`runtime_data`, was affirming and carried that runtime data as `cnf`: `check_binding` dropped its
RUNTIME_DATA_NOT_BOUND finding on the success path. Anyone holding the workload's raw-bound evidence for a live
challenge could then get the secret encrypted to a key of their own."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.amd_pki import FakeAmdPki
from tests.service_helpers import make_harness
from tests.unit.test_service_snp import files, service
from verifier.appraisal.binding import BindingRule, check_binding, key_is_bound
from verifier.appraisal.model import Tier
from verifier.appraisal.policy import Policy, PolicySet, policy_sha256
from verifier.appraisal.registry import get_scheme
from verifier.client.results import ResultError, verify_result
from verifier.errors import AccessDeniedError, RequestError
from verifier.results.cnf import key_to_jwk
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product

RAW = Policy(policy_id="raw", report_data_binding="raw")


def _rule(kind: str) -> BindingRule:
    """The binding rule of evidence kind `kind`'s scheme, as the service passes it (`Scheme.binding`)."""
    return get_scheme(kind).binding


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


def _spki(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return data


def _codes(result: Any) -> list[str]:
    return [f.code for f in result.appraisal.findings]


def test_raw_binding_with_runtime_data_is_contraindicated_and_binds_no_key(db: Database, pki: FakeAmdPki) -> None:
    # The workload is appraised under raw binding (here: the server's default policy for workloads without one).
    svc = dataclasses.replace(service(db, pki, policies=PolicySet({"raw": RAW})), default_policy="raw")
    challenge = svc.create_challenge()
    attacker_key = _spki(ec.generate_private_key(ec.SECP256R1()))
    evidence = pki.report(report_data=challenge.nonce.ljust(64, b"\0"))  # the workload's genuine raw-bound report
    result = svc.appraise(
        AppraisalRequest(
            tee="snp", evidence=evidence, collateral=files(pki), nonce=challenge.nonce, runtime_data=attacker_key
        ),
        require_challenge=True,
    )
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert _codes(result) == ["RUNTIME_DATA_NOT_BOUND"]
    assert "cnf" not in _payload(result.token)


def test_raw_binding_without_runtime_data_still_affirms_without_cnf(db: Database, pki: FakeAmdPki) -> None:
    svc = dataclasses.replace(service(db, pki, policies=PolicySet({"raw": RAW})), default_policy="raw")
    challenge = svc.create_challenge()
    evidence = pki.report(report_data=challenge.nonce.ljust(64, b"\0"))
    result = svc.appraise(
        AppraisalRequest(tee="snp", evidence=evidence, collateral=files(pki), nonce=challenge.nonce),
        require_challenge=True,
    )
    assert result.appraisal.status is Tier.AFFIRMING, _codes(result)
    assert "cnf" not in _payload(result.token)


def test_sha512_binding_carries_the_covered_key(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki)
    challenge = svc.create_challenge()
    key = ec.generate_private_key(ec.SECP256R1())
    evidence = pki.report(report_data=hashlib.sha512(challenge.nonce + _spki(key)).digest())
    result = svc.appraise(
        AppraisalRequest(
            tee="snp", evidence=evidence, collateral=files(pki), nonce=challenge.nonce, runtime_data=_spki(key)
        ),
        require_challenge=True,
    )
    assert result.appraisal.status is Tier.AFFIRMING, _codes(result)
    assert _payload(result.token)["cnf"] == {"jwk": key_to_jwk(key.public_key())}


def test_nitro_cnf_is_the_document_public_key(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    key = ec.generate_private_key(ec.SECP256R1())
    challenge = h.service.create_challenge()
    evidence = h.pki.mint(nonce=challenge.nonce, public_key=_spki(key))
    result = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=evidence, nonce=challenge.nonce), require_challenge=True
    )
    assert result.appraisal.status is Tier.AFFIRMING, _codes(result)
    assert _payload(result.token)["cnf"] == {"jwk": key_to_jwk(key.public_key())}
    other = _spki(ec.generate_private_key(ec.SECP256R1()))
    challenge = h.service.create_challenge()
    evidence = h.pki.mint(nonce=challenge.nonce, public_key=_spki(key))
    swapped = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=evidence, nonce=challenge.nonce, runtime_data=other),
        require_challenge=True,
    )
    assert _codes(swapped) == ["RUNTIME_DATA_MISMATCH"]
    assert "cnf" not in _payload(swapped.token)


def test_check_binding_keeps_every_finding() -> None:
    nonce, key = b"n" * 32, b"k" * 65
    claims: dict[str, object] = {"report_data": nonce.ljust(64, b"\0").hex()}
    assert [f.code for f in check_binding(_rule("snp"), claims, nonce, key, "raw")] == ["RUNTIME_DATA_NOT_BOUND"]
    assert [f.code for f in check_binding(_rule("tdx"), {"report_data": "00" * 64}, nonce, key, "raw")] == [
        "RUNTIME_DATA_NOT_BOUND",
        "REPORT_DATA_MISMATCH",
    ]


def test_key_is_bound_only_when_the_evidence_covers_it() -> None:
    nonce, key = b"n" * 32, b"k" * 65
    sha = {"report_data": hashlib.sha512(nonce + key).hexdigest()}
    assert key_is_bound(_rule("snp"), sha, nonce, key, "sha512")
    assert not key_is_bound(_rule("snp"), sha, nonce, b"x" + key, "sha512")
    assert not key_is_bound(_rule("snp"), sha, nonce, key, "raw")
    assert not key_is_bound(_rule("tdx"), {"report_data": nonce.ljust(64, b"\0").hex()}, nonce, key, "raw")
    assert key_is_bound(_rule("nitro"), {"public_key": key.hex()}, nonce, key, "raw")
    assert not key_is_bound(_rule("nitro"), {"public_key": ""}, nonce, key, "sha512")
    assert not key_is_bound(_rule("snp"), sha, nonce, b"", "sha512")


def test_server_restricts_the_policies_a_request_may_select(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki, policies=PolicySet({"raw": RAW, "strict": Policy(policy_id="strict", require_nonce=True)}))
    svc = dataclasses.replace(svc, selectable_policies=frozenset({"strict"}), default_policy="strict")
    request = AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki))
    with pytest.raises(AccessDeniedError) as denied:
        svc.appraise(dataclasses.replace(request, policy="raw"))
    assert denied.value.code == "POLICY_NOT_ALLOWED"
    unnamed = svc.appraise(request)  # no name: the server's default policy, not the built-in
    assert unnamed.appraisal.policy_id == "strict"
    assert _codes(unnamed) == ["NONCE_MISSING"]
    with pytest.raises(RequestError):
        dataclasses.replace(svc, selectable_policies=None).appraise(dataclasses.replace(request, policy="nope"))


def test_relying_party_pins_the_policy_by_id_or_sha256(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki, policies=PolicySet({"raw": RAW}))
    token = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki))).token
    keys, now = svc.jwks(), pki.now + dt.timedelta(seconds=1)
    for allowed in (["default"], [policy_sha256(Policy())], [policy_sha256(Policy()).upper(), "other"]):
        assert verify_result(token, keys, now=now, allowed_policies=allowed).policy_id == "default"
    for allowed in (["raw"], [policy_sha256(RAW)], ["Default"]):
        with pytest.raises(ResultError) as refused:
            verify_result(token, keys, now=now, allowed_policies=allowed)
        assert refused.value.code == "TOKEN_POLICY_NOT_ALLOWED"
    assert verify_result(token, keys, now=now).policy_sha256 == policy_sha256(Policy())


def test_broker_rule_pins_policies(tmp_path: Any) -> None:
    from verifier.broker.config import load_config
    from verifier.errors import ConfigError

    (tmp_path / "s.bin").write_bytes(b"secret")
    (tmp_path / "s.bin").chmod(0o600)
    path = tmp_path / "broker.json"

    def config(policies: Any) -> Any:
        path.write_text(
            json.dumps(
                {
                    "verifier": {"grpc": "127.0.0.1:1", "jwks_url": "http://127.0.0.1:2/jwks"},
                    "secrets": [{"name": "db", "file": "s.bin", "workload": "app", "require_policies": policies}],
                }
            )
        )
        return load_config(path)

    assert config(["prod-snp", "ab" * 32]).rules["db"].require_policies == ("prod-snp", "ab" * 32)
    for bad in ("prod-snp", [""], [1]):
        with pytest.raises(ConfigError):
            config(bad)
