"""Text PostgreSQL cannot hold (U+0000) or UTF-8 cannot encode (lone surrogates) in what the repositories write:
request ids, policy names, findings, kept-evidence descriptions and names, audit subjects and details. Before,
PostgreSQL refused such rows (psycopg.DataError: a gRPC INTERNAL for an unauthenticated Appraise); now they are
stored with U+2400 / U+FFFD in place, identically on SQLite and PostgreSQL, and the audit chain still verifies."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import make_harness
from verifier.appraisal.model import Tier
from verifier.service import AppraisalRequest
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.engine import Database
from verifier.storage.kept_evidence import SqlKeptEvidence
from verifier.storage.text import storable, storable_json

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NUL, SURROGATE = "\x00", "\ud800"


def test_storable() -> None:
    assert storable("a\x00b\ud800c\udfff") == "a\u2400b\ufffdc\ufffd"
    assert storable("plain ✓ text", 5) == "plain"
    assert storable_json({"k\x00": ["v\x00", 1, None, {"x": "\ud800"}], "n": 2.5}) == {
        "k\u2400": ["v\u2400", 1, None, {"x": "\ufffd"}],
        "n": 2.5,
    }


def test_appraisal_record_with_nul_and_surrogates(db: Database) -> None:
    store = SqlAppraisalStore(db)
    findings = [{"code": "NITRO_X", "expected": "i-abc", "actual": f"i-{NUL}evil{SURROGATE}", f"key{NUL}": "v"}]
    store.record(
        appraisal_id="a1",
        appraised_at=NOW,
        tee="nitro",
        status="contraindicated",
        policy_id=f"p{NUL}",
        evidence_sha256="0" * 64,
        findings=findings,
        token_id=f"t{NUL}",
        request_id="r" * 63 + NUL + "tail",
    )
    row = store.get("a1")
    assert row is not None
    assert row["findings"] == [
        {"code": "NITRO_X", "expected": "i-abc", "actual": "i-\u2400evil\ufffd", "key\u2400": "v"}
    ]
    assert (row["policy_id"], row["token_id"], row["request_id"]) == ("p\u2400", "t\u2400", "r" * 63 + "\u2400")
    store.record(
        appraisal_id="a2",
        appraised_at=NOW,
        tee="nitro",
        status="affirming",
        policy_id="default",
        evidence_sha256="0" * 64,
        findings=[],
        token_id=None,
        request_id="x" * 128,
    )  # a too-long id
    assert store.get("a2")["request_id"] == "x" * 64  # type: ignore[index]
    assert audit.verify_chain(db).ok
    (first, _) = audit.entries(db)
    assert first.details["request_id"] == "r" * 63 + "\u2400" and first.details["policy_id"] == "p\u2400"


def test_audit_append_with_nul(db: Database) -> None:
    with db.session() as session:
        audit.append(
            session,
            at=NOW,
            actor=f"admin{NUL}",
            action=f"x{NUL}",
            subject=f"s{NUL}",
            details={"peer": f"ipv4{NUL}", f"k{NUL}": [SURROGATE]},
        )
    (entry,) = audit.entries(db)
    assert (entry.actor, entry.action, entry.subject) == ("admin\u2400", "x\u2400", "s\u2400")
    assert entry.details == {"peer": "ipv4\u2400", "k\u2400": ["\ufffd"]}
    assert audit.verify_chain(db).ok


def test_kept_evidence_with_nul(db: Database) -> None:
    kept = SqlKeptEvidence(db)
    kept.keep(
        received_at=NOW,
        tee="nitro",
        evidence=b"\x00doc",
        collateral={f"a{NUL}.pem": b"\x00"},
        policy=f"p{NUL}",
        status="affirming",
        appraisal_id="a1",
        workload=f"nitro module i-{NUL}x",
    )
    (item,) = kept.recent(1)
    assert (item.workload, item.policy, item.evidence) == ("nitro module i-\u2400x", "p\u2400", b"\x00doc")
    assert item.collateral == {"a\u2400.pem": b"\x00"}


def test_nitro_module_id_with_nul_is_appraised_and_kept(db: Database) -> None:
    """Through the orchestrator: the module_id (evidence text) becomes the kept workload description when the
    document has no PCR0; that crashed the appraisal on PostgreSQL."""
    h = make_harness(db)
    h.approve()
    h.service.kept = SqlKeptEvidence(db)
    pcrs = {k: v for k, v in FakeAwsPki.default_pcrs().items() if k}
    for extra in ({}, {"pcrs": pcrs}):
        evidence = h.pki.mint(module_id=f"i-{NUL}evil", **extra)
        result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence, request_id="req-1"))
        assert result.appraisal.status is (Tier.AFFIRMING if not extra else Tier.CONTRAINDICATED)
        assert h.appraisals.get(result.appraisal_id) is not None
    assert "nitro module i-\u2400evil" in {k.workload for k in h.service.kept.recent(2)}
    assert audit.verify_chain(db).ok


@pytest.mark.parametrize("value", ["ok", "", "\u2400 already"])
def test_storable_leaves_storable_text_alone(value: str) -> None:
    assert storable(value) == value
