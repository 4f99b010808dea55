"""SqlAppraisalStore: record, get, recent."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import pytest

from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.engine import Database

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
FINDINGS = [
    {"code": "NITRO_PCR_MATCH", "claim": "executables", "value": 2, "expected": "ab" * 48, "actual": "ab" * 48},
    {"code": "NITRO_DEBUG", "claim": "configuration", "value": 32, "detail": {"nested": [1, None, "x"]}},
]


@pytest.fixture
def store(db: Database) -> SqlAppraisalStore:
    return SqlAppraisalStore(db)


def _record(store: SqlAppraisalStore, at: dt.datetime, **overrides: object) -> str:
    appraisal_id = str(uuid.uuid4())
    fields: dict[str, object] = {
        "appraisal_id": appraisal_id,
        "appraised_at": at,
        "tee": "nitro",
        "status": "affirming",
        "policy_id": "default",
        "evidence_sha256": hashlib.sha256(appraisal_id.encode()).hexdigest(),
        "findings": FINDINGS,
        "token_id": "jti-" + appraisal_id[:8],
        "request_id": None,
    }
    fields.update(overrides)
    store.record(**fields)  # type: ignore[arg-type]
    return appraisal_id


def test_record_and_get(store: SqlAppraisalStore) -> None:
    appraisal_id = _record(store, T0, request_id="req-1")
    got = store.get(appraisal_id)
    assert got is not None
    assert got["appraisal_id"] == appraisal_id
    assert got["appraised_at"] == T0 and got["appraised_at"].tzinfo is not None
    assert got["findings"] == FINDINGS
    assert got["tee"] == "nitro" and got["status"] == "affirming" and got["policy_id"] == "default"
    assert got["request_id"] == "req-1" and got["token_id"].startswith("jti-")


def test_get_unknown(store: SqlAppraisalStore) -> None:
    assert store.get(str(uuid.uuid4())) is None


def test_recent_newest_first(store: SqlAppraisalStore) -> None:
    ids = [_record(store, T0 + dt.timedelta(minutes=i), token_id=None) for i in range(5)]
    assert [a["appraisal_id"] for a in store.recent(3)] == ids[::-1][:3]
    assert store.recent(0) == []


def test_bad_digest_rejected(store: SqlAppraisalStore) -> None:
    with pytest.raises(ValueError):
        _record(store, T0, evidence_sha256="AB" * 32)
