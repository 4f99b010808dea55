"""Named policies in the database: validation, canonical hash, audit, tighten-only built-ins, PolicySet layering,
and the service selecting a database policy per request."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update

from tests.service_helpers import make_harness
from tests.unit.appraisal.test_policy_model import CANONICAL, SHA256
from verifier.appraisal.policy import (
    Policy,
    PolicySet,
    canonical_json,
    policy_from_json,
    policy_sha256,
    policy_to_json,
    weakenings,
)
from verifier.errors import RequestError
from verifier.service import AppraisalRequest
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.policies import SqlPolicies
from verifier.storage.tables import PolicyRow

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
FULL: dict[str, Any] = {
    "id": "strict",
    "require_nonce": True,
    "required_kinds": {"nitro": ["nitro.pcr8"]},
    "snp": {
        "minimum_tcb": {"snp": 20, "microcode": 200},
        "tcb_fields": ["reported", "committed"],
        "allowed_vmpls": [0],
        "minimum_firmware": [1, 55],
        "minimum_build": 3,
        "allowed_chip_ids": ["ab" * 64],
    },
    "tdx": {
        "accepted_statuses": {"UpToDate": "affirming"},
        "advisory_deny": ["INTEL-SA-00837"],
        "allowed_mr_seams": ["cd" * 48],
    },
}


def test_policy_json_round_trip_and_canonical_hash() -> None:
    policy = policy_from_json(FULL)
    body = policy_to_json(policy)
    assert policy_from_json(body) == policy
    assert body["required_kinds"]["nitro"] == ["nitro.pcr0", "nitro.pcr1", "nitro.pcr2", "nitro.pcr8"]
    assert policy_sha256(policy) == policy_sha256(policy_from_json(json.loads(canonical_json(body))))
    assert policy_sha256(policy) != policy_sha256(Policy())
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert weakenings(policy_from_json({**FULL, "id": "default"}), Policy()) == []


def test_set_get_list_and_audit(db: Database) -> None:
    store = SqlPolicies(db)
    assert store.get("strict") is None
    stored = store.set("strict", json.dumps(FULL), now=T0, actor="cli:alice")
    assert stored.policy == policy_from_json(FULL) and stored.sha256 == policy_sha256(stored.policy)
    assert store.get("strict") == stored.policy
    again = store.set("strict", {**FULL, "require_nonce": False}, now=T0 + dt.timedelta(minutes=1), actor="bob")
    assert [(p.name, p.sha256, p.updated_by) for p in store.list()] == [("strict", again.sha256, "bob")]
    assert store.names() == ["strict"]
    first, second = audit.entries(db, action="policy.set")
    assert (first.subject, first.actor, first.details["sha256"], first.details["previous_sha256"]) == (
        "strict",
        "cli:alice",
        stored.sha256,
        None,
    )
    assert second.details["previous_sha256"] == stored.sha256 and second.details["sha256"] == again.sha256
    assert second.details["body"] == policy_to_json(again.policy)
    assert audit.verify_chain(db).ok


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("strict", "{not json", "POLICY_INVALID"),
        ("strict", "[]", "POLICY_INVALID"),
        ("strict", {**FULL, "allow_debug": True}, "POLICY_INVALID"),  # unknown key: a typo must not weaken
        ("strict", {**FULL, "id": "other"}, "POLICY_INVALID"),
        ("strict", {"snp": {"minimum_tcb": {"nope": 1}}}, "POLICY_INVALID"),
        ("strict", {"tdx": {"require_sept_ve_disable": False}}, "POLICY_INVALID"),
        ("", {}, "POLICY_NAME_INVALID"),
        ("x" * 101, {}, "POLICY_NAME_INVALID"),
        ("default", {"snp": {"crl_fail_open": True}}, "POLICY_LOOSENS_BUILT_IN"),
        ("default", {"snp": {"allow_migrate_ma": True}}, "POLICY_LOOSENS_BUILT_IN"),
        ("default", {"report_data_binding": "raw"}, "POLICY_LOOSENS_BUILT_IN"),
        (
            "default",
            {"tdx": {"accepted_statuses": {"UpToDate": "affirming", "OutOfDate": "warning"}}},
            "POLICY_LOOSENS_BUILT_IN",
        ),
        ("default", {"tdx": {"grace_days": 30}}, "POLICY_LOOSENS_BUILT_IN"),
        ("nonce-required", {"require_nonce": False}, "POLICY_LOOSENS_BUILT_IN"),
    ],
)
def test_invalid_or_loosening_bodies_are_refused(db: Database, name: str, body: Any, code: str) -> None:
    with pytest.raises(RequestError) as info:
        SqlPolicies(db).set(name, body, now=T0, actor="t")
    assert info.value.code == code
    assert audit.entries(db, action="policy.set") == []


def test_default_may_be_tightened_in_the_database(db: Database) -> None:
    store = SqlPolicies(db)
    store.set("default", {"require_nonce": True, "snp": {"minimum_tcb": {"snp": 8}}}, now=T0, actor="t")
    policies = PolicySet(store=store)
    effective, source = policies.lookup("default") or (None, "")
    assert source == "database" and effective is not None and effective.require_nonce
    assert policies.get(None) == effective


def test_layering_database_over_file_over_built_in(db: Database) -> None:
    store = SqlPolicies(db)
    file_policies = PolicySet({"team": Policy(policy_id="team"), "file-only": Policy(policy_id="file-only")})
    policies = file_policies.with_store(store)
    assert policies.lookup("team") == (Policy(policy_id="team"), "file")
    assert policies.lookup("nonce-required")[1] == "built-in"  # type: ignore[index]
    store.set("team", {"require_nonce": True}, now=T0, actor="t")
    store.set("db-only", {}, now=T0, actor="t")
    assert policies.lookup("team")[1] == "database" and policies.get("team").require_nonce  # type: ignore[index]
    assert policies.names() == ["db-only", "default", "file-only", "nonce-required", "team"]
    with pytest.raises(RequestError) as info:
        policies.get("nope")
    assert info.value.code == "POLICY_UNKNOWN"


def test_a_loosening_row_written_behind_our_back_is_ignored(db: Database) -> None:
    loose = policy_to_json(policy_from_json({"id": "default", "snp": {"crl_fail_open": True}}))
    with db.session() as session:
        session.add(PolicyRow(name="default", body=loose, sha256="0" * 64, updated_at=T0, updated_by="sql"))
    policies = PolicySet(store=SqlPolicies(db))
    assert policies.lookup("default") == (Policy(), "built-in")
    with db.session() as session:
        session.execute(update(PolicyRow).values(body={"id": "default", "bogus": 1}))
    with pytest.raises(RequestError) as info:
        policies.get("default")
    assert info.value.code == "POLICY_INVALID"


def test_the_service_selects_database_policies_by_name(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    store = SqlPolicies(db)
    h.service.policies = PolicySet(store=store)
    stored = store.set("enclave-strict", {"require_nonce": True}, now=T0, actor="t")
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(), policy="enclave-strict"))
    assert [f.code for f in result.appraisal.findings] == ["NONCE_MISSING"]
    claims = jwt.decode(
        result.token,
        KeySet.import_key_set(h.service.jwks()),  # type: ignore[arg-type]
        algorithms=["ES256"],
    ).claims
    sub = claims["submods"]["nitro"]
    assert sub["ear_appraisal_policy_ids"] == ["enclave-strict"]
    assert sub["ear_verifier_claims"]["policy_sha256"] == stored.sha256
    (row,) = audit.entries(db, action="appraisal")
    assert row.details["policy_sha256"] == stored.sha256


@pytest.mark.parametrize("golden", ["full", "tdx-rich", "nulls", "code:default"])
def test_a_row_written_before_the_strict_models_reads_back_the_same(db: Database, golden: str) -> None:
    """Rows `set` wrote with the hand-written codec (its canonical JSON, pinned in test_policy_model) read back, on
    SQLite and PostgreSQL (JSONB reorders keys), as a policy with the hash stored beside them."""
    body = json.loads(CANONICAL[golden])
    with db.session() as session:
        session.add(PolicyRow(name=body["id"], body=body, sha256=SHA256[golden], updated_at=T0, updated_by="sql"))
    store = SqlPolicies(db)
    policy = store.get(body["id"])
    assert policy is not None and policy_sha256(policy) == SHA256[golden]
    assert policy_to_json(policy) == body
    (stored,) = store.list()
    assert (stored.sha256, policy_sha256(stored.policy)) == (SHA256[golden], SHA256[golden])


def test_a_name_postgresql_cannot_hold_names_no_policy(db: Database) -> None:
    store = SqlPolicies(db)
    for name in ("de\x00fault", "\ud800", "x" * 1000):
        assert store.get(name) is None
