"""Appraisals evaluated without I/O (issue 13: the server evaluates on its event loop and hands only the unit of
work to the group commit's thread): `verifier.blocking` refuses every blocking operation inside `no_blocking` (a
database unit of work, a collateral load that is not a memory hit, any source that does not guard itself), the
inline result is the threaded one, and a reference-set change between evaluation and commit is caught where it
commits (the revocation decides the next appraisal, as on the threaded path)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration.test_hot_path_revocation import PCRS, Replicas
from verifier.blocking import WouldBlockError, no_blocking, would_block
from verifier.collateral.base import CollateralItem, CollateralKey, OfflineSource, guarded
from verifier.collateral.cache import CachedSource
from verifier.recording import StaleReadError
from verifier.requests import Prepared, Recorded
from verifier.service import AppraisalRequest, VerifierService
from verifier.storage.engine import Database
from verifier.storage.tables import AppraisalRow

KEY = CollateralKey("amd.crl", (("product", "Genoa"),))
AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


class CountingSource:
    """A source that does not guard itself: every fetch would reach the network."""

    def __init__(self) -> None:
        self.fetches = 0
        self.rejected: list[str] = []

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.fetches += 1
        return CollateralItem(key, b"crl", at, at + dt.timedelta(days=1), "test")

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected.append(reason)


def test_would_block_does_nothing_outside_the_guard_and_refuses_inside() -> None:
    would_block("anything")  # no guard: returns
    with no_blocking() as guard:
        with pytest.raises(WouldBlockError):
            would_block("a database unit of work")
        with pytest.raises(WouldBlockError):
            would_block("an HTTP request")
    assert guard.blocked == "a database unit of work"  # the first one
    would_block("after the block")  # the guard is gone again


def test_an_unknown_source_counts_as_blocking_and_rejections_reach_it() -> None:
    inner = CountingSource()
    source = guarded(inner)
    assert guarded(OfflineSource()).__class__ is OfflineSource
    with no_blocking() as guard, pytest.raises(WouldBlockError):
        source.fetch(KEY, at=AT)
    assert guard.blocked == "a collateral fetch" and inner.fetches == 0
    item = source.fetch(KEY, at=AT)  # outside the guard it is the source itself
    assert item.data == b"crl" and inner.fetches == 1
    source.reject(item, reason="CRL_SIGNATURE_INVALID")  # type: ignore[attr-defined]
    assert inner.rejected == ["CRL_SIGNATURE_INVALID"]


def test_the_cache_serves_memory_hits_inside_the_guard_and_loads_nothing() -> None:
    inner = CountingSource()
    cache = CachedSource(inner, None)
    try:
        assert guarded(cache) is cache
        with no_blocking() as guard, pytest.raises(WouldBlockError):
            cache.fetch(KEY, at=AT)  # a miss: it would load from the vendor
        assert guard.blocked == "a collateral load" and inner.fetches == 0
        cache.fetch(KEY, at=AT)
        with no_blocking() as guard:
            assert cache.fetch(KEY, at=AT).data == b"crl"  # a memory hit: no I/O
        assert guard.blocked is None and inner.fetches == 1
    finally:
        cache.close()


def test_no_database_unit_of_work_starts_inside_the_guard(db: Database) -> None:
    with no_blocking() as guard, pytest.raises(WouldBlockError), db.session():
        pass
    assert guard.blocked == "a database unit of work"


@pytest.fixture
def replicas(db: Database, database_url: str) -> Iterator[Replicas]:
    pair = Replicas(database_url)
    yield pair
    pair.close()


def _record(service: VerifierService, prepared: Prepared) -> tuple[Recorded | None, BaseException | None]:
    """`record_inline` awaited on this thread (the server awaits it on its event loop)."""
    outcome: list[tuple[Recorded | None, BaseException | None]] = []
    finished = threading.Event()

    def done(recorded: Recorded | None, error: BaseException | None) -> None:
        outcome.append((recorded, error))
        finished.set()

    service.record_inline(prepared, done)
    assert finished.wait(10)
    return outcome[0]


def _approve(r: Replicas) -> list[Any]:
    return [r.admin.references.add(f"nitro.pcr{i}", PCRS[i], "enclave", now=r.now()) for i in (0, 1, 2)]


def test_the_inline_result_is_the_threaded_one_and_is_recorded(replicas: Replicas) -> None:
    r = replicas
    _approve(r)
    service = r.serving.service
    request = AppraisalRequest(tee="nitro", evidence=r.pki.mint())
    assert service.prepare_inline(request) is None  # nothing in memory yet: the snapshot needs a database read
    threaded = service.appraise(request)
    prepared = service.prepare_inline(request)
    assert prepared is not None
    recorded, error = _record(service, prepared)
    assert error is None and recorded is not None
    inline = service.finish(prepared, recorded)
    assert inline.appraisal.status == threaded.appraisal.status
    assert inline.appraisal.status.value == "affirming"
    assert inline.appraisal.claims == threaded.appraisal.claims
    assert [f.code for f in inline.appraisal.findings] == [f.code for f in threaded.appraisal.findings]
    with r.serving.database.session() as session:
        row = session.get(AppraisalRow, inline.appraisal_id)
        assert row is not None and row.token_id == inline.token_id and row.status == "affirming"


def test_a_revocation_between_evaluation_and_commit_decides_the_appraisal(replicas: Replicas) -> None:
    r = replicas
    added = _approve(r)
    service = r.serving.service
    request = AppraisalRequest(tee="nitro", evidence=r.pki.mint())
    assert service.appraise(request).appraisal.status.value == "affirming"
    prepared = service.prepare_inline(request)
    assert prepared is not None and prepared.evaluation.matched  # evaluated as affirming on the snapshot held
    r.admin.references.revoke(added[0].id, "CVE", now=r.now())  # another replica revokes now
    recorded, error = _record(service, prepared)
    assert recorded is None and isinstance(error, StaleReadError)  # nothing of it was recorded
    assert service.appraise(request).appraisal.status.value == "contraindicated"  # the server's fallback


def test_a_fresh_pki_evidence_with_another_image_is_contraindicated_inline(replicas: Replicas) -> None:
    r = replicas
    _approve(r)
    service = r.serving.service
    service.appraise(AppraisalRequest(tee="nitro", evidence=r.pki.mint()))
    other = {**FakeAwsPki.default_pcrs(), 0: b"\x07" * 48}
    prepared = service.prepare_inline(AppraisalRequest(tee="nitro", evidence=r.pki.mint(pcrs=other)))
    assert prepared is not None
    recorded, error = _record(service, prepared)
    assert error is None and recorded is not None
    assert service.finish(prepared, recorded).appraisal.status.value == "contraindicated"
