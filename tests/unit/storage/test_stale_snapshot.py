"""The reference-set version is checked where the appraisal commits (issue 13 item 3): a steady-state appraisal
reads no version before it evaluates (the snapshot held is used), and a change committed while it was being
evaluated makes it evaluate again on the new snapshot, so the change takes effect for an appraisal already under
way instead of being recorded against the version it replaced. On the code before, the version was read before
evaluating and never again: the appraisal below was affirmed under the replaced policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.errors import UnavailableError
from verifier.service import STALE_TRIES, AppraisalRequest
from verifier.settings import Settings
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.policies import SqlPolicies
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.manifest_model import ManifestEntry


@pytest.fixture
def app(db: Database, database_url: str) -> Iterator[tuple[Components, FakeAwsPki]]:
    pki = FakeAwsPki()
    built = build(Settings(database_url=database_url, development=True), clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    before = pki.now - dt.timedelta(days=1)
    SqlPolicies(built.database).set("enclave-policy", {}, now=before, actor="test")
    pcrs = FakeAwsPki.default_pcrs()
    entries = [ManifestEntry(f"nitro.pcr{i}", pcrs[i], "enclave", None, "1", None) for i in (0, 1, 2)]
    workloads = SqlWorkloads(built.database)
    workloads.add_values("enclave", entries, now=before, actor="test", tee="nitro")
    workloads.set_policy("enclave", "enclave-policy", now=before, actor="test")
    yield built, pki
    built.close()


def _changing(components: Components, monkeypatch: pytest.MonkeyPatch, pki: FakeAwsPki, times: int) -> list[int]:
    """Commit a policy change (it bumps the reference-set version) after each of the next `times` evaluations."""
    service, evaluations = components.service, [0]
    evaluate = service._evaluate

    def evaluate_then_change(*args: Any, **kwargs: Any) -> Any:
        result = evaluate(*args, **kwargs)
        evaluations[0] += 1
        if evaluations[0] <= times:
            body = {"require_nonce": True} if evaluations[0] % 2 else {}
            SqlPolicies(components.database).set("enclave-policy", body, now=pki.now, actor="test")
        return result

    monkeypatch.setattr(service, "_evaluate", evaluate_then_change)
    return evaluations


def test_a_change_committed_during_the_evaluation_is_seen_by_that_appraisal(
    app: tuple[Components, FakeAwsPki], monkeypatch: pytest.MonkeyPatch
) -> None:
    components, pki = app
    evidence = pki.mint()
    assert components.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence)).appraisal.status.value == (
        "affirming"
    )
    evaluations = _changing(components, monkeypatch, pki, times=1)
    result = components.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    assert evaluations[0] == 2  # evaluated again on the new snapshot
    assert result.appraisal.status.value == "contraindicated"  # the new policy requires a nonce
    row = components.service.appraisals.get(result.appraisal_id)  # type: ignore[union-attr]
    assert row is not None and row["status"] == "contraindicated"
    assert audit.verify_chain(components.database).ok


def test_an_appraisal_under_a_set_that_keeps_changing_is_refused_not_recorded(
    app: tuple[Components, FakeAwsPki], monkeypatch: pytest.MonkeyPatch
) -> None:
    components, pki = app
    evidence = pki.mint()
    components.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    evaluations = _changing(components, monkeypatch, pki, times=STALE_TRIES)
    with pytest.raises(UnavailableError) as info:
        components.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    assert info.value.code == "REFERENCE_SET_CHANGING" and evaluations[0] == STALE_TRIES
    assert len(components.service.appraisals.recent(10)) == 1  # type: ignore[union-attr]


def test_a_change_committed_while_the_batch_records_is_seen_by_that_appraisal(
    app: tuple[Components, FakeAwsPki], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is read where the batch holds the audit chain's lock (PostgreSQL) or the file's write lock
    (SQLite), not when its transaction begins: a change committed after the batch began but before it appended to
    the chain was recorded after that change and affirmed under the policy it replaced (on the code before, the
    token below was affirming although `policy set` had returned)."""
    components, pki = app
    service, evidence = components.service, pki.mint()
    assert service.appraise(AppraisalRequest(tee="nitro", evidence=evidence)).appraisal.status.value == "affirming"
    record, changes = service._record, [0]

    def change_then_record(*args: Any, **kwargs: Any) -> Any:  # runs inside the batch's transaction
        if not changes[0]:
            changes[0] += 1  # another unit of work (another replica, an admin) commits the change meanwhile
            SqlPolicies(components.database).set("enclave-policy", {"require_nonce": True}, now=pki.now, actor="t")
        return record(*args, **kwargs)

    monkeypatch.setattr(service, "_record", change_then_record)
    result = service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    assert changes[0] == 1
    assert result.appraisal.status.value == "contraindicated"  # appraised again under the new policy
    rows = {row["appraisal_id"]: row for row in service.appraisals.recent(10)}  # type: ignore[union-attr]
    assert rows[result.appraisal_id]["status"] == "contraindicated" and len(rows) == 2  # nothing of the first try
    check = audit.verify_chain(components.database)
    assert check.ok, check
