"""The hot path's cache (verifier.storage.hot_cache) on SQLite and PostgreSQL: it answers exactly what the SQL
stores answer, at every appraisal time (rows cached, activity evaluated at `at`); every kind of change that can
alter an appraisal bumps the reference-set version in its own transaction and is seen by the very next read; a
pinned appraisal reads nothing but the version; the bounds and the cutoff fall back to the database."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update

from tests.service_helpers import SettableClock
from verifier.errors import RequestError
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.hot_cache import CUTOFF_MARGIN, HotCache
from verifier.storage.hot_readers import HotPolicies, HotReferences, HotWorkloads
from verifier.storage.policies import SqlPolicies
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.storage.tables import PolicyRow, WorkloadRow
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.manifest_model import Manifest, ManifestEntry

T0 = dt.datetime(2026, 5, 1, 9, 0, 0, 123456, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
NITRO = ["nitro.pcr0", "nitro.pcr1", "nitro.pcr2"]
SNP = ["snp.measurement"]
ALL_KINDS = [*NITRO, *SNP]


def value(byte: int) -> bytes:
    return bytes([byte]) * 48


class Stores:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.clock = SettableClock(T0)
        self.refs = SqlReferenceValueStore(db)
        self.workloads = SqlWorkloads(db)
        self.policies = SqlPolicies(db)
        self.cache = HotCache(db, self.clock)
        self.hot_refs = HotReferences(self.cache, self.refs)
        self.hot_workloads = HotWorkloads(self.cache, self.workloads)
        self.hot_policies = HotPolicies(self.cache, self.policies)


@pytest.fixture
def s(db: Database) -> Stores:
    return Stores(db)


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def populate(s: Stores) -> dict[str, str]:
    """A reference set with every state and history: active, pending, expiring, expired, revoked (per value, other
    rows with it), re-approved and added again, rows added in one transaction (same created_at), workloads with
    policies, a revoked workload, a revoked version, a version policy, database policies."""
    r, w, p = s.refs, s.workloads, s.policies
    ids: dict[str, str] = {}
    ids["active"] = r.add("nitro.pcr0", value(1), "img", now=T0 - 3 * H, version="1").id
    ids["pending"] = r.add("nitro.pcr0", value(2), "img", now=T0 - 3 * H, version="2", valid_from=T0 + H).id
    ids["expiring"] = r.add("nitro.pcr1", value(3), "img", now=T0 - 3 * H, version="1", expires_at=T0 + 2 * H).id
    ids["windowed"] = r.add(
        "nitro.pcr2", value(4), "img", now=T0 - 3 * H, version="1", valid_from=T0 - H, expires_at=T0 + 3 * H
    ).id
    ids["expired"] = r.add("nitro.pcr2", value(5), "old", now=T0 - 3 * H).id
    r.expire(ids["expired"], now=T0 - 2 * H)
    shared_a = r.add("nitro.pcr1", value(6), "img", now=T0 - 3 * H, version="2").id
    ids["shared_b"] = r.add("nitro.pcr1", value(6), "other", now=T0 - 3 * H).id
    r.revoke(shared_a, "CVE", now=T0 - H)  # revokes the value: shared_b too
    again = r.reapprove("nitro.pcr1", value(6), "fixed", now=T0 + H, label="again").added
    assert again is not None
    ids["again"] = again.id
    added, _ = r.add_missing(
        [ManifestEntry(k, value(10 + i), "batch", None, "1", None) for i, k in enumerate(ALL_KINDS)], now=T0 - 2 * H
    )
    ids["batch"] = added[0].id
    r.add("snp.measurement", value(20), "vm", now=T0 - 3 * H, version="1")
    r.add("snp.measurement", value(21), "vm", now=T0 - 3 * H, version="2")
    p.set("strict", {"require_nonce": True}, now=T0 - 3 * H, actor="t")
    p.set("loose", {}, now=T0 - 3 * H, actor="t")
    w.ensure("img", "nitro", now=T0 - 3 * H, actor="t", policy="strict", version_policies={"2": "loose"})
    w.ensure("vm", "snp", now=T0 - 3 * H, actor="t")
    w.revoke_version("vm", "1", "bad", now=T0 - H, actor="t")
    w.ensure("gone", "nitro", now=T0 - 3 * H, actor="t")
    w.add_values("gone", [ManifestEntry("nitro.pcr0", value(30), "gone", None, "1", None)], now=T0 - 3 * H, actor="t")
    w.revoke("gone", "retired", now=T0 + H, actor="t")
    return ids


def instants() -> list[dt.datetime]:
    base = [T0 + k * H / 2 for k in range(-8, 9)]
    return sorted({*base, T0 + H - dt.timedelta(microseconds=1), T0 + 2 * H + dt.timedelta(microseconds=1)})


def test_answers_exactly_what_the_stores_answer_at_every_time(s: Stores) -> None:
    populate(s)
    names = ["img", "vm", "gone", "batch", "other", "again", "nope", ""]
    for at in instants():
        for kinds in (NITRO, SNP, ALL_KINDS, ["nitro.pcr1"], []):
            assert s.hot_refs.active(kinds, at) == s.refs.active(kinds, at), (at, kinds)
            assert s.hot_refs.members(kinds, at) == s.refs.members(kinds, at), (at, kinds)
    assert s.hot_workloads.metadata(names) == s.workloads.metadata(names)
    for name in ("strict", "loose", "default", "nope", "bad\x00name", "x" * 101):
        assert s.hot_policies.get(name) == s.policies.get(name), name
    assert s.hot_policies.names() == s.policies.names()
    assert s.cache.loads == 1  # one snapshot answered all of it (one version read per unpinned call)


def test_a_stored_policy_that_no_longer_validates_fails_closed_like_the_store(s: Stores) -> None:
    s.policies.set("p", {"require_nonce": True}, now=T0, actor="t")
    with s.db.session() as session:  # edited behind the verifier's back, then any change bumps the version
        session.execute(update(PolicyRow).where(PolicyRow.name == "p").values(body={"id": "p", "bogus": 1}))
        audit.bump_reference_set(session, T0)
    with pytest.raises(RequestError) as direct:
        s.policies.get("p")
    with pytest.raises(RequestError) as cached:
        s.hot_policies.get("p")
    assert (
        (cached.value.code, cached.value.message)
        == (direct.value.code, direct.value.message)
        == (
            "POLICY_INVALID",
            direct.value.message,
        )
    )


def _changes(s: Stores, ids: dict[str, str]) -> list[tuple[str, Callable[[], object]]]:
    r, w, p = s.refs, s.workloads, s.policies
    later = T0 + 5 * H
    manifest = Manifest(
        source="m.yaml",
        entries=(ManifestEntry("snp.measurement", value(40), "vm", None, "3", None),),
        managed_labels=frozenset({"vm"}),
    )
    return [
        ("ref add", lambda: r.add("nitro.pcr0", value(50), "img", now=later, version="3")),
        (
            "ref add_missing",
            lambda: r.add_missing([ManifestEntry("nitro.pcr2", value(51), "img", None, "3", None)], now=later),
        ),
        ("ref revoke", lambda: r.revoke(ids["active"], "CVE-2", now=later)),
        ("ref expire", lambda: r.expire(ids["batch"], now=later)),
        ("ref reapprove", lambda: r.reapprove("nitro.pcr0", value(1), "ok", now=later + H, label="img", version="1")),
        ("ref apply", lambda: r.apply([manifest], now=later)),
        ("workload create", lambda: w.create("new", "nitro", now=later, actor="t")),
        (
            "workload ensure (inline policy)",
            lambda: w.ensure(
                "new", "nitro", now=later, actor="t", inline_policies={"workload:new": {"require_nonce": True}}
            ),
        ),
        (
            "workload add version",
            lambda: w.add_values(
                "new",
                [ManifestEntry("nitro.pcr0", value(52), "new", None, "1", None)],
                now=later,
                actor="t",
                new_version=True,
            ),
        ),
        ("workload policy", lambda: w.set_policy("img", "loose", now=later, actor="t")),
        ("workload version policy", lambda: w.set_version_policy("img", "1", "strict", now=later, actor="t")),
        ("workload version revoke", lambda: w.revoke_version("img", "2", "bad", now=later, actor="t")),
        ("workload revoke", lambda: w.revoke("new", "retired", now=later, actor="t")),
        ("policy set", lambda: p.set("loose", {"require_nonce": True}, now=later, actor="t")),
        ("policy set (new)", lambda: p.set("newer", {}, now=later, actor="t")),
    ]


def _view(s: Stores) -> tuple[object, ...]:
    at = T0 + 6 * H
    names = ["img", "vm", "new", "gone"]
    return (
        s.hot_refs.active(ALL_KINDS, at),
        s.hot_refs.members(ALL_KINDS, at),
        s.hot_workloads.metadata(names),
        {n: s.hot_policies.get(n) for n in ("strict", "loose", "newer", "workload:new")},
        s.hot_policies.names(),
    )


def _direct(s: Stores) -> tuple[object, ...]:
    at = T0 + 6 * H
    names = ["img", "vm", "new", "gone"]
    return (
        s.refs.active(ALL_KINDS, at),
        s.refs.members(ALL_KINDS, at),
        s.workloads.metadata(names),
        {n: s.policies.get(n) for n in ("strict", "loose", "newer", "workload:new")},
        s.policies.names(),
    )


def test_every_kind_of_change_bumps_the_version_and_is_seen_by_the_next_read(s: Stores) -> None:
    ids = populate(s)
    for name, change in _changes(s, ids):
        before = _view(s)  # the cache holds the state before the change
        version = audit.reference_set_version(s.db)
        change()
        assert audit.reference_set_version(s.db) == version + 1, name  # bumped, once, in the change's transaction
        after = _view(s)
        assert after == _direct(s), name  # seen by the very next read
        assert after != before, name  # and it did change what an appraisal reads
        with s.cache.pinned() as pinned:
            assert pinned == version + 1, name
    with s.db.session() as session:  # a migrated workload flagged for review (migration 0005), then confirmed
        session.execute(update(WorkloadRow).where(WorkloadRow.name == "vm").values(review=True))
        audit.bump_reference_set(session, T0)
    assert s.hot_workloads.metadata(["vm"])["vm"].review
    version = audit.reference_set_version(s.db)
    s.workloads.confirm_review("vm", now=T0 + 7 * H, actor="t")
    assert audit.reference_set_version(s.db) == version + 1
    assert not s.hot_workloads.metadata(["vm"])["vm"].review


def test_a_pinned_appraisal_reads_the_version_once_and_nothing_else(s: Stores) -> None:
    populate(s)
    s.cache.refresh()
    with statements(s.db) as seen, s.cache.pinned() as version:
        for _ in range(3):
            s.hot_refs.active(NITRO, T0)
            s.hot_refs.members(NITRO, T0)
            s.hot_workloads.metadata(["img", "gone"])
            s.hot_policies.get("strict")
            s.hot_policies.get("default")
    assert version == audit.reference_set_version(s.db)
    assert seen == ["SELECT reference_set.version FROM reference_set WHERE reference_set.id = " + _param(s.db)]
    with statements(s.db) as unpinned:  # outside an appraisal every call reads the version itself
        s.hot_refs.active(NITRO, T0)
        s.hot_policies.get("strict")
    assert len(unpinned) == 2 and all("reference_set" in q for q in unpinned)


def _param(db: Database) -> str:
    return "?" if db.dialect == "sqlite" else "%(id_1)s::INTEGER"


def test_a_snapshot_stays_pinned_while_another_change_is_seen_outside(s: Stores) -> None:
    ids = populate(s)
    with s.cache.pinned() as version:
        s.refs.revoke(ids["active"], "CVE", now=T0)
        assert ids["active"] in [r.id for r in s.hot_refs.active(NITRO, T0 + H)]  # this appraisal's snapshot
        seen_elsewhere: list[list[str]] = []
        worker = threading.Thread(
            target=lambda: seen_elsewhere.append([r.id for r in s.hot_refs.active(NITRO, T0 + H)])
        )
        worker.start()
        worker.join()
        assert ids["active"] not in seen_elsewhere[0]  # another thread (another appraisal) sees the revocation
    with s.cache.pinned() as newer:
        assert newer == version + 1
        assert ids["active"] not in [r.id for r in s.hot_refs.active(NITRO, T0 + H)]


def test_times_before_the_cutoff_and_sets_over_the_bounds_are_read_from_the_database(s: Stores) -> None:
    populate(s)
    early = T0 - CUTOFF_MARGIN - dt.timedelta(seconds=1)  # before the snapshot's cutoff: expired rows matter there
    s.cache.refresh()
    with statements(s.db) as seen:
        assert s.hot_refs.active(ALL_KINDS, early) == s.refs.active(ALL_KINDS, early)
        assert s.hot_refs.members(ALL_KINDS, early) == s.refs.members(ALL_KINDS, early)
    assert any("FROM reference_values" in q for q in seen)
    for small in (HotCache(s.db, s.clock, max_rows=5), HotCache(s.db, s.clock, max_policies=1)):
        refs, workloads = HotReferences(small, s.refs), HotWorkloads(small, s.workloads)
        policies = HotPolicies(small, s.policies)
        assert not small.refresh().held
        for at in instants():
            assert refs.active(ALL_KINDS, at) == s.refs.active(ALL_KINDS, at)
            assert refs.members(ALL_KINDS, at) == s.refs.members(ALL_KINDS, at)
        assert workloads.metadata(["img", "vm", "gone"]) == s.workloads.metadata(["img", "vm", "gone"])
        assert policies.get("strict") == s.policies.get("strict") and policies.names() == s.policies.names()


def test_an_old_snapshot_is_reloaded_even_without_a_change(s: Stores) -> None:
    populate(s)
    cache = HotCache(s.db, s.clock, max_age_s=0.0)
    cache.refresh()
    cache.refresh()
    assert cache.loads == 2
    steady = HotCache(s.db, s.clock)
    steady.refresh()
    steady.refresh()
    assert steady.loads == 1


def test_concurrent_appraisals_and_changes_never_see_an_older_set(s: Stores) -> None:
    """Threads pin, read and check while another revokes value after value: a snapshot is never older than the
    version read for it, and once a revocation committed every later pin sees it."""
    refs = [s.refs.add("nitro.pcr0", value(100 + i), f"w{i}", now=T0 - H).id for i in range(12)]
    errors: list[str] = []
    revoked: set[str] = set()
    lock = threading.Lock()
    done = threading.Event()

    def appraiser() -> None:
        while not done.is_set():
            with lock:
                committed = set(revoked)
            with s.cache.pinned():
                active = {r.id for r in s.hot_refs.active(["nitro.pcr0"], T0)}
            if active & committed:
                errors.append(f"revoked values still active: {sorted(active & committed)}")

    threads = [threading.Thread(target=appraiser) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for ref_id in refs:
            s.refs.revoke(ref_id, "rotate", now=T0 - H / 2)
            with lock:
                revoked.add(ref_id)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert errors == []
    assert s.hot_refs.active(["nitro.pcr0"], T0) == []
