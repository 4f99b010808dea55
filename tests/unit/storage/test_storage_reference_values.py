"""SqlReferenceValueStore on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from verifier.errors import NotFoundError, RequestError
from verifier.reference_values.model import ReferenceValueStore
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
PCR = bytes(range(48))


@pytest.fixture
def store(db: Database) -> SqlReferenceValueStore:
    return SqlReferenceValueStore(db)


def test_implements_protocol(store: SqlReferenceValueStore) -> None:
    typed: ReferenceValueStore = store
    assert typed is store


def test_add_round_trips_aware_utc(store: SqlReferenceValueStore) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    added = store.add("nitro.pcr0", PCR, "image v1", now=T0.astimezone(plus_two), expires_at=T0 + HOUR)
    assert uuid.UUID(added.id).version == 4
    [listed] = store.list(at=T0)
    assert listed == added
    assert listed.value == PCR and isinstance(listed.value, bytes)
    assert listed.created_at == T0 and listed.created_at.utcoffset() == dt.timedelta(0)
    assert listed.expires_at == T0 + HOUR and listed.expires_at.tzinfo is not None
    assert listed.revoked_at is None and listed.revoke_reason is None


def test_naive_datetime_rejected(store: SqlReferenceValueStore) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        store.add("nitro.pcr0", PCR, "x", now=T0.replace(tzinfo=None))


def test_list_filters_and_orders(store: SqlReferenceValueStore) -> None:
    late = store.add("nitro.pcr1", PCR, "late", now=T0 + 2 * HOUR)
    early = store.add("nitro.pcr0", PCR, "early", now=T0)
    expiring = store.add("nitro.pcr0", PCR, "expiring", now=T0 + HOUR, expires_at=T0 + 3 * HOUR)
    assert [r.id for r in store.list(at=T0)] == [early.id, expiring.id, late.id]
    assert [r.id for r in store.list(kind="nitro.pcr0", at=T0)] == [early.id, expiring.id]
    assert [r.id for r in store.list(at=T0 + 3 * HOUR)] == [early.id, late.id]
    assert [r.id for r in store.list(at=T0 + 3 * HOUR, include_inactive=True)] == [early.id, expiring.id, late.id]


def test_revoke_and_active_across_time(store: SqlReferenceValueStore) -> None:
    kept = store.add("nitro.pcr0", PCR, "kept", now=T0)
    gone = store.add("nitro.pcr0", b"\x01" * 48, "gone", now=T0)
    other = store.add("nitro.pcr8", PCR, "other kind", now=T0)
    revoked = store.revoke(gone.id, "compromised build", now=T0 + HOUR)
    assert revoked.revoked_at == T0 + HOUR and revoked.revoke_reason == "compromised build"
    assert revoked.state(T0 + HOUR) == "revoked" and revoked.state(T0) == "active"

    assert {r.id for r in store.active(["nitro.pcr0"], T0)} == {kept.id, gone.id}
    assert [r.id for r in store.active(["nitro.pcr0"], T0 + HOUR)] == [kept.id]  # revoked_at <= at: inactive
    assert {r.id for r in store.active(["nitro.pcr0", "nitro.pcr8"], T0 + HOUR)} == {kept.id, other.id}
    assert store.active([], T0) == []
    # never deleted: still listed with include_inactive
    assert {r.id for r in store.list(include_inactive=True, at=T0 + HOUR)} == {kept.id, gone.id, other.id}


def test_active_respects_expiry(store: SqlReferenceValueStore) -> None:
    value = store.add("nitro.pcr0", PCR, "short", now=T0, expires_at=T0 + HOUR)
    assert [r.id for r in store.active(["nitro.pcr0"], T0 + HOUR - dt.timedelta(microseconds=1))] == [value.id]
    assert store.active(["nitro.pcr0"], T0 + HOUR) == []


def test_revoke_twice(store: SqlReferenceValueStore) -> None:
    value = store.add("nitro.pcr0", PCR, "x", now=T0)
    store.revoke(value.id, "first", now=T0 + HOUR)
    with pytest.raises(RequestError) as info:
        store.revoke(value.id, "second", now=T0 + 2 * HOUR)
    assert info.value.code == "REFERENCE_VALUE_REVOKED"
    [still] = store.list(include_inactive=True, at=T0)
    assert still.revoke_reason == "first" and still.revoked_at == T0 + HOUR


def test_revoke_unknown(store: SqlReferenceValueStore) -> None:
    with pytest.raises(NotFoundError) as info:
        store.revoke(str(uuid.uuid4()), "why", now=T0)
    assert info.value.code == "REFERENCE_VALUE_NOT_FOUND"


def test_label_too_long(store: SqlReferenceValueStore) -> None:
    with pytest.raises(RequestError):
        store.add("nitro.pcr0", PCR, "x" * 201, now=T0)
