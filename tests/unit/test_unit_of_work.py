"""The appraisal unit of work through the service (issue 12 item 3, `verifier.recording`): the challenge's
consumption, the appraisal row and its audit row commit together, the token is returned only after that commit, and
a failed recording spends no nonce. On SQLite and PostgreSQL (the fault is a trigger refusing appraisal rows)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from sqlalchemy import event, exc, select, text
from sqlalchemy.orm import Session

from tests.service_helpers import Harness, make_harness
from verifier.appraisal.model import Tier
from verifier.challenges import ConsumeOutcome
from verifier.errors import RequestError, UnavailableError
from verifier.recording import AppraisalRecord, RecordingUnit
from verifier.reference_values.model import ReferenceValue
from verifier.service import AppraisalRequest, AppraisalResult
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.storage.tables import ChallengeRow

T = TypeVar("T")


@pytest.fixture
def h(db: Database) -> Harness:
    harness = make_harness(db)
    harness.approve()
    return harness


def codes(result: AppraisalResult) -> list[str]:
    return [f.code for f in result.appraisal.findings]


def consumed_at(db: Database, nonce: bytes) -> dt.datetime | None:
    with db.session() as session:
        return session.scalar(select(ChallengeRow.consumed_at).where(ChallengeRow.nonce == nonce))


def audited(db: Database) -> list[str]:
    """The subjects (appraisal ids) of the audit log's appraisal rows."""
    return [e.subject for e in audit.entries(db, action="appraisal")]


@contextmanager
def appraisal_rows_refused(db: Database) -> Iterator[None]:
    """A trigger makes the database refuse every insert into `appraisals` inside the appraisal's transaction
    (PostgreSQL: SQLSTATE 53100 disk_full, so DATABASE_FULL; SQLite: RAISE(ABORT), an IntegrityError)."""
    if db.dialect == "postgresql":
        create = [
            "CREATE FUNCTION refuse_appraisal() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'injected fault' USING ERRCODE = 'disk_full'; END $$",
            "CREATE TRIGGER refuse_appraisal BEFORE INSERT ON appraisals "
            "FOR EACH ROW EXECUTE FUNCTION refuse_appraisal()",
        ]
        drop = ["DROP TRIGGER refuse_appraisal ON appraisals", "DROP FUNCTION refuse_appraisal()"]
    else:
        create = [
            "CREATE TRIGGER refuse_appraisal BEFORE INSERT ON appraisals BEGIN SELECT RAISE(ABORT, 'injected'); END"
        ]
        drop = ["DROP TRIGGER refuse_appraisal"]
    with db.session() as session:
        for statement in create:
            session.execute(text(statement))
    try:
        yield
    finally:
        with db.session() as session:
            for statement in drop:
                session.execute(text(statement))


@pytest.mark.parametrize("evidence", ["genuine", "bad-signature"])
def test_a_failed_recording_spends_no_nonce_and_writes_no_audit_row(h: Harness, db: Database, evidence: str) -> None:
    """Before the unit of work the nonce was consumed in a transaction of its own: recording failed, the nonce was
    spent anyway and the caller's retry was CHALLENGE_REPLAYED. Now the retry with the same nonce succeeds."""
    nonce = h.service.create_challenge().nonce
    bad = evidence == "bad-signature"
    request = AppraisalRequest(
        tee="nitro", evidence=h.pki.mint(nonce=nonce, **({"signature": bytes(96)} if bad else {})), nonce=nonce
    )
    with appraisal_rows_refused(db):
        with pytest.raises((UnavailableError, exc.IntegrityError)) as info:
            h.service.appraise(request, require_challenge=True)
        if db.dialect == "postgresql":
            assert isinstance(info.value, UnavailableError) and info.value.code == "DATABASE_FULL"
    assert consumed_at(db, nonce) is None  # the nonce is not spent
    assert h.appraisals.recent(10) == [] and audited(db) == []  # and no audit row tells of an appraisal
    retry = h.service.appraise(request, require_challenge=True)
    assert "CHALLENGE_REPLAYED" not in codes(retry)
    if bad:
        assert retry.appraisal.status is Tier.CONTRAINDICATED and codes(retry) == ["NITRO_SIGNATURE_INVALID"]
    else:
        assert retry.appraisal.status is Tier.AFFIRMING, codes(retry)
    assert consumed_at(db, nonce) == retry.appraised_at
    assert [row["appraisal_id"] for row in h.appraisals.recent(10)] == [retry.appraisal_id]
    assert audited(db) == [retry.appraisal_id]
    assert codes(h.service.appraise(request, require_challenge=True))[-1] == "CHALLENGE_REPLAYED"


class Peeking:
    """The real unit of work, observed from another engine after its last statement, just before its commit."""

    def __init__(self, store: SqlAppraisalStore, observer: Database, nonce: bytes) -> None:
        self.store, self.observer, self.nonce = store, observer, nonce
        self.before_commit: list[tuple[bool, int, int]] = []

    def seen(self) -> tuple[bool, int, int]:
        """(challenge consumed, appraisal rows, audit rows), as the observer sees them."""
        return (
            consumed_at(self.observer, self.nonce) is not None,
            len(SqlAppraisalStore(self.observer).recent(10)),
            len(audited(self.observer)),
        )

    validates_version = True

    def run(self, work: Callable[[RecordingUnit], T], *, version: int | None = None) -> T:
        """The store's own (group commit) path, observed in its transaction's before_commit event."""
        sessions = self.store._db._sessions

        def peek(_: Session) -> None:
            self.before_commit.append(self.seen())

        event.listen(sessions, "before_commit", peek)
        try:
            return self.store.run(work, version=version)
        finally:
            event.remove(sessions, "before_commit", peek)


@pytest.mark.parametrize("evidence", ["genuine", "bad-signature"])
def test_consumption_appraisal_and_audit_row_become_visible_together(
    h: Harness, db: Database, database_url: str, evidence: str
) -> None:
    """The challenge is consumed even for bad evidence (a nonce is single-use): in the transaction that records the
    negative result."""
    observer = Database(database_url)
    try:
        nonce = h.service.create_challenge().nonce
        peeking = Peeking(h.appraisals, observer, nonce)
        h.service.appraisals = peeking
        bad = {"signature": bytes(96)} if evidence == "bad-signature" else {}
        result = h.service.appraise(
            AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=nonce, **bad), nonce=nonce), require_challenge=True
        )
        assert peeking.before_commit == [(False, 0, 0)]  # nothing of it before the commit
        assert peeking.seen() == (True, 1, 1)  # all of it after
        row = h.appraisals.get(result.appraisal_id)
        assert row is not None and row["status"] == result.appraisal.status.value and row["token_id"] == result.token_id
        assert result.appraisal.status is (Tier.CONTRAINDICATED if bad else Tier.AFFIRMING)
    finally:
        observer.dispose()


def test_a_request_without_a_challenge_is_recorded_and_audited(h: Harness, db: Database) -> None:
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert result.appraisal.status is Tier.AFFIRMING
    assert h.appraisals.get(result.appraisal_id) is not None
    assert audited(db) == [result.appraisal_id]


def test_a_service_without_storage_still_consumes_and_records_nothing(h: Harness, db: Database) -> None:
    service = dataclasses.replace(h.service, appraisals=None)
    nonce = service.create_challenge().nonce
    request = AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=nonce), nonce=nonce)
    assert service.appraise(request, require_challenge=True).appraisal.status is Tier.AFFIRMING
    assert codes(service.appraise(request, require_challenge=True)) == ["CHALLENGE_REPLAYED"]  # the store consumed it
    assert h.appraisals.recent(10) == [] and audited(db) == []
    bare = dataclasses.replace(h.service, appraisals=None, challenges=None)
    assert bare.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())).appraisal.status is Tier.AFFIRMING
    with pytest.raises(RequestError) as info:
        bare.appraise(request, require_challenge=True)
    assert info.value.code == "CHALLENGES_DISABLED"


class Refusing:
    validates_version = False

    def begin(self) -> Any:
        raise AssertionError("reappraise must not open a unit of work")

    def run(self, work: Any, *, version: int | None = None) -> Any:
        raise AssertionError("reappraise must not open a unit of work")


def test_reappraise_consumes_and_records_nothing(h: Harness, db: Database) -> None:
    nonce = h.service.create_challenge().nonce
    h.service.appraisals = Refusing()
    request = AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=nonce), nonce=nonce)
    appraisal = h.service.reappraise(request, at=h.clock.now(), references=h.refs)
    assert appraisal.status is Tier.AFFIRMING
    assert consumed_at(db, nonce) is None and audited(db) == []


class Events:
    """A fake unit of work and reader that log what the service does, in order."""

    def __init__(self, refs: SqlReferenceValueStore, *, commit_fails: bool = False) -> None:
        self.refs, self.commit_fails = refs, commit_fails
        self.log: list[str] = []
        self.records: list[AppraisalRecord] = []

    def active(self, kinds: Sequence[str], at: dt.datetime) -> list[ReferenceValue]:
        self.log.append("read")
        return self.refs.active(kinds, at)

    def members(self, kinds: Sequence[str], at: dt.datetime) -> list[ReferenceValue]:
        self.log.append("read")
        return self.refs.members(kinds, at)

    @contextmanager
    def begin(self) -> Iterator[Events]:
        self.log.append("begin")
        try:
            yield self
        except BaseException:
            self.log.append("rollback")
            raise
        if self.commit_fails:
            self.log.append("commit failed")
            raise UnavailableError("DATABASE_UNAVAILABLE", "the database is unavailable; retry later")
        self.log.append("commit")

    validates_version = False

    def run(self, work: Callable[[Events], T], *, version: int | None = None) -> T:
        with self.begin() as unit:
            return work(unit)

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        self.log.append("consume")
        return ConsumeOutcome.OK

    def record(self, record: AppraisalRecord) -> None:
        self.log.append("record")
        self.records.append(record)


def _traced(h: Harness, monkeypatch: pytest.MonkeyPatch, events: Events) -> None:
    sign = h.service.signer.sign

    def traced_sign(claims: Any, **options: Any) -> str:
        events.log.append("sign")
        return sign(claims, **options)

    monkeypatch.setattr(h.service.signer, "sign", traced_sign)
    h.service.references = events
    h.service.appraisals = events


def test_the_unit_opens_after_the_reads_and_the_token_leaves_after_the_commit(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps 2-8 (signatures, collateral, reference values) run before the unit opens (step 7a at the earliest);
    consume, sign and record run inside it; the token is returned once it committed."""
    events = Events(h.refs)
    _traced(h, monkeypatch, events)
    nonce = b"\x05" * 32
    result = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=nonce), nonce=nonce), require_challenge=True
    )
    assert result.appraisal.status is Tier.AFFIRMING, codes(result)
    assert "read" in events.log and "read" not in events.log[events.log.index("begin") :]
    assert events.log[events.log.index("begin") :] == ["begin", "consume", "sign", "record", "commit"]
    (record,) = events.records
    assert (record.appraisal_id, record.token_id, record.status) == (result.appraisal_id, result.token_id, "affirming")


def test_no_token_when_the_commit_fails(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    events = Events(h.refs, commit_fails=True)
    _traced(h, monkeypatch, events)
    with pytest.raises(UnavailableError) as info:
        h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert info.value.code == "DATABASE_UNAVAILABLE"
    assert events.log[events.log.index("begin") :] == ["begin", "sign", "record", "commit failed"]


def test_a_failing_signer_rolls_the_unit_back(h: Harness, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    nonce = h.service.create_challenge().nonce

    def expired(*_: Any, **__: Any) -> str:
        raise UnavailableError("SIGNING_KEY_EXPIRED", "active signing key expired; rotate it")

    monkeypatch.setattr(h.service.signer, "sign", expired)
    request = AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=nonce), nonce=nonce)
    with pytest.raises(UnavailableError):
        h.service.appraise(request, require_challenge=True)
    assert consumed_at(db, nonce) is None and h.appraisals.recent(10) == [] and audited(db) == []
