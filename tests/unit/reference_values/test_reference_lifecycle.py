"""Reference-value lifecycle on SQLite and PostgreSQL: pending -> active -> expired | revoked, who and why, the
audit trail (hash chain intact) and the reference-set version, all in the change's own transaction."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import make_harness
from verifier.appraisal.model import Tier
from verifier.errors import NotFoundError, RequestError
from verifier.reference_values.model import STATES, ReferenceValue, ReferenceValueStore
from verifier.service import AppraisalRequest
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
PCR = bytes(range(48))


@pytest.fixture
def store(db: Database) -> SqlReferenceValueStore:
    return SqlReferenceValueStore(db)


def test_model_state_precedence() -> None:
    ref = ReferenceValue("x", "nitro.pcr0", PCR, "l", T0, expires_at=T0 + 2 * HOUR, valid_from=T0 + HOUR)
    assert [ref.state(T0), ref.state(T0 + HOUR), ref.state(T0 + 2 * HOUR)] == ["pending", "active", "expired"]
    assert [ref.active_at(T0), ref.active_at(T0 + HOUR)] == [False, True]
    revoked = ReferenceValue(
        "y", "nitro.pcr0", PCR, "l", T0, expires_at=T0 + HOUR, valid_from=T0 + 2 * HOUR, revoked_at=T0
    )
    assert revoked.state(T0 + 3 * HOUR) == "revoked"  # revoked wins over expired and pending


def test_store_implements_protocol(store: SqlReferenceValueStore) -> None:
    typed: ReferenceValueStore = store
    assert typed is store


def test_pending_until_valid_from_then_active(store: SqlReferenceValueStore) -> None:
    ref = store.add("nitro.pcr0", PCR, "img 2", now=T0, valid_from=T0 + HOUR, version="2.0", actor="token:ci")
    assert (ref.version, ref.valid_from, ref.created_by) == ("2.0", T0 + HOUR, "token:ci")
    assert ref.state(T0) == "pending"
    assert store.active(["nitro.pcr0"], T0) == []
    assert store.list(at=T0) == []
    assert [r.id for r in store.list(state="pending", at=T0)] == [ref.id]
    assert [r.id for r in store.active(["nitro.pcr0"], T0 + HOUR)] == [ref.id]  # valid_from is inclusive
    assert [r.id for r in store.list(state="active", at=T0 + HOUR)] == [ref.id]
    assert store.list(state="pending", at=T0 + HOUR) == []


def test_expiry_by_time_and_by_expire(store: SqlReferenceValueStore) -> None:
    timed = store.add("nitro.pcr0", PCR, "timed", now=T0, expires_at=T0 + HOUR)
    dropped = store.add("nitro.pcr1", PCR, "dropped", now=T0)
    assert {r.id for r in store.active(["nitro.pcr0", "nitro.pcr1"], T0)} == {timed.id, dropped.id}
    assert store.active(["nitro.pcr0"], T0 + HOUR) == []
    expired = store.expire(dropped.id, now=T0 + HOUR, actor="cli:alice", reason="superseded")
    assert expired.expires_at == T0 + HOUR and expired.state(T0 + HOUR) == "expired"
    assert store.active(["nitro.pcr1"], T0 + HOUR) == []
    assert {r.id for r in store.list(state="expired", at=T0 + HOUR)} == {timed.id, dropped.id}
    with pytest.raises(RequestError, match="already revoked or expired"):
        store.expire(dropped.id, now=T0 + 2 * HOUR)
    with pytest.raises(NotFoundError):
        store.expire("no-such-id", now=T0)


def test_revoke_records_who_and_why_and_keeps_the_row(store: SqlReferenceValueStore) -> None:
    ref = store.add("nitro.pcr0", PCR, "img", now=T0, actor="cli:bob")
    revoked = store.revoke(ref.id, "CVE-2025-0001", now=T0 + HOUR, actor="token:security")
    assert (revoked.revoked_at, revoked.revoked_by, revoked.revoke_reason) == (
        T0 + HOUR,
        "token:security",
        "CVE-2025-0001",
    )
    assert revoked.created_by == "cli:bob"
    assert store.active(["nitro.pcr0"], T0 + HOUR) == []
    assert store.active(["nitro.pcr0"], T0) != []  # history: it was active before
    [kept] = store.list(include_inactive=True, at=T0 + HOUR)
    assert kept == revoked and kept.state(T0 + HOUR) == "revoked"
    assert [r.id for r in store.list(state="revoked", at=T0 + HOUR)] == [ref.id]
    with pytest.raises(RequestError, match="already revoked"):
        store.revoke(ref.id, "again", now=T0 + 2 * HOUR)
    with pytest.raises(NotFoundError):
        store.revoke("no-such-id", "x", now=T0)


def test_every_change_is_audited_and_bumps_the_set_version(db: Database, store: SqlReferenceValueStore) -> None:
    v0 = audit.reference_set_version(db)
    a = store.add("nitro.pcr0", PCR, "img", now=T0, actor="cli:alice")
    b = store.add("nitro.pcr1", PCR, "img", now=T0, expires_at=T0 + 5 * HOUR, actor="cli:alice")
    store.revoke(a.id, "bad build", now=T0 + HOUR, actor="token:sec")
    store.expire(b.id, now=T0 + 2 * HOUR, actor="cli:carol")
    assert audit.reference_set_version(db) == v0 + 4
    rows = [e for e in audit.entries(db, limit=1000) if e.action.startswith("ref.")]
    assert [(e.action, e.subject, e.actor) for e in rows] == [
        ("ref.add", a.id, "cli:alice"),
        ("ref.add", b.id, "cli:alice"),
        ("ref.revoke", a.id, "token:sec"),
        ("ref.expire", b.id, "cli:carol"),
    ]
    assert rows[0].details == {"kind": "nitro.pcr0", "value": PCR.hex(), "label": "img"}
    assert rows[2].details["reason"] == "bad build"
    check = audit.verify_chain(db)
    assert check.ok, check.reason
    assert check.rows >= 4


def test_failed_changes_leave_no_audit_row_and_no_bump(db: Database, store: SqlReferenceValueStore) -> None:
    ref = store.add("nitro.pcr0", PCR, "img", now=T0)
    store.revoke(ref.id, "x", now=T0)
    version, count = audit.reference_set_version(db), len(audit.entries(db, limit=1000))
    with pytest.raises(RequestError):
        store.revoke(ref.id, "again", now=T0)
    with pytest.raises(RequestError):
        store.add("nitro.pcr0", PCR, "x" * 201, now=T0)
    assert (audit.reference_set_version(db), len(audit.entries(db, limit=1000))) == (version, count)


def test_history_by_id_and_by_kind_label(store: SqlReferenceValueStore) -> None:
    a = store.add("nitro.pcr0", PCR, "img 1", now=T0, actor="cli:a")
    b = store.add("nitro.pcr0", b"\x01" * 48, "img 2", now=T0 + HOUR, actor="cli:b")
    store.revoke(a.id, "old", now=T0 + 2 * HOUR, actor="cli:c")
    assert [(e.action, e.actor) for e in store.history(a.id)] == [("ref.add", "cli:a"), ("ref.revoke", "cli:c")]
    assert [e.subject for e in store.history(kind="nitro.pcr0")] == [a.id, b.id, a.id]
    assert [e.subject for e in store.history(label="img 2")] == [b.id]
    assert store.history(kind="nitro.pcr0", label="img 1")[-1].details["reason"] == "old"
    with pytest.raises(NotFoundError):
        store.history("no-such-id")


def test_sql_state_filter_agrees_with_the_model(store: SqlReferenceValueStore) -> None:
    store.add("nitro.pcr0", PCR, "active", now=T0)
    store.add("nitro.pcr0", PCR, "pending", now=T0, valid_from=T0 + HOUR)
    store.add("nitro.pcr0", PCR, "expired", now=T0 - HOUR, expires_at=T0)
    store.add("nitro.pcr0", PCR, "pending-then-expired", now=T0, valid_from=T0 + HOUR, expires_at=T0 + 2 * HOUR)
    r = store.add("nitro.pcr0", PCR, "revoked", now=T0, expires_at=T0 - dt.timedelta(seconds=1) + HOUR)
    store.revoke(r.id, "x", now=T0)
    for at in (T0, T0 + HOUR, T0 + 3 * HOUR):
        everything = store.list(include_inactive=True, at=at)
        assert len(everything) == 5
        for state in STATES:
            assert {x.id for x in store.list(state=state, at=at)} == {
                x.id for x in everything if x.state(at) == state
            }, (state, at)
        assert {x.id for x in store.list(at=at)} == {x.id for x in everything if x.active_at(at)}
    assert [x.label for x in store.list(label="pending", include_inactive=True, at=T0)] == ["pending"]


def test_revoked_value_stops_affirming_at_once_and_stays_listed(db: Database) -> None:
    h = make_harness(db, FakeAwsPki())
    h.approve(label="img 1.0")
    evidence = h.pki.mint()
    assert h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence)).appraisal.status is Tier.AFFIRMING
    pcr0 = next(r for r in h.refs.list(kind="nitro.pcr0", at=h.clock.now()))
    h.refs.revoke(pcr0.id, "compromised signing key", now=h.clock.now(), actor="cli:sec")
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert "REFERENCE_VALUE_MISSING" in [f.code for f in result.appraisal.findings] or "REFERENCE_VALUE_MISMATCH" in [
        f.code for f in result.appraisal.findings
    ]
    [listed] = h.refs.list(kind="nitro.pcr0", include_inactive=True, at=h.clock.now())
    assert listed.state(h.clock.now()) == "revoked" and listed.revoked_by == "cli:sec"


def test_pending_value_does_not_affirm_until_valid_from(db: Database) -> None:
    h = make_harness(db, FakeAwsPki())
    now = h.clock.now()
    for index, value in FakeAwsPki.default_pcrs().items():
        if index in (0, 1, 2):
            h.refs.add(f"nitro.pcr{index}", value, "img 2.0", now=now, valid_from=now + HOUR)
    assert h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())).appraisal.status is (
        Tier.CONTRAINDICATED
    )
    h.clock.at = now + HOUR
    assert h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())).appraisal.status is (Tier.AFFIRMING)
