"""Kept evidence: keep/recent/prune with bounded retention, and the service keeping what it appraised."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import make_harness
from verifier.errors import ConfigError
from verifier.service import AppraisalRequest
from verifier.settings import Settings, from_environment
from verifier.storage.engine import Database
from verifier.storage.kept_evidence import MAX_KEPT_COLLATERAL, MAX_KEPT_EVIDENCE, SqlKeptEvidence

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)


def keep(store: SqlKeptEvidence, at: dt.datetime, n: int = 0, **kw: object) -> str | None:
    fields: dict[str, object] = {
        "received_at": at,
        "tee": "snp",
        "evidence": b"ev%d" % n,
        "collateral": {"vcek.der": b"\x00\x01cert"},
        "policy": "default",
        "status": "affirming",
        "appraisal_id": f"a-{n}",
        "workload": "snp measurement ab",
    }
    fields.update(kw)
    return store.keep(**fields)  # type: ignore[arg-type]


def test_keep_and_recent_round_trip(db: Database) -> None:
    store = SqlKeptEvidence(db)
    first = keep(store, T0, 1)
    second = keep(store, T0 + dt.timedelta(seconds=1), 2, policy=None, status="contraindicated")
    items = store.recent(10)
    assert [i.id for i in items] == [second, first]  # newest first
    assert items[1].evidence == b"ev1" and items[1].collateral == {"vcek.der": b"\x00\x01cert"}
    assert items[1].received_at == T0 and items[1].appraisal_id == "a-1" and items[1].policy == "default"
    assert items[0].policy is None and items[0].status == "contraindicated"
    assert store.recent(1)[0].id == second and store.recent(0) == []


def test_disabled_and_oversized_items_are_not_kept(db: Database) -> None:
    assert keep(SqlKeptEvidence(db, max_rows=0), T0) is None
    store = SqlKeptEvidence(db)
    assert keep(store, T0, evidence=b"x" * (MAX_KEPT_EVIDENCE + 1)) is None
    assert keep(store, T0, collateral={"big": b"x" * (MAX_KEPT_COLLATERAL + 1)}) is None
    assert store.count() == 0


def test_prune_by_age_and_count(db: Database) -> None:
    store = SqlKeptEvidence(db, max_rows=3, max_days=7, prune_every=1000)
    old = keep(store, T0 - dt.timedelta(days=8), 0)  # the first keep prunes (nothing to prune yet)
    ids = [keep(store, T0 + dt.timedelta(minutes=i), i + 1) for i in range(5)]
    assert store.count() == 6
    assert store.prune(T0 + dt.timedelta(hours=1)) == 3  # one too old, two over the count
    remaining = [i.id for i in store.recent(10)]
    assert remaining == list(reversed(ids[2:]))
    assert old not in remaining


def test_prune_runs_opportunistically(db: Database) -> None:
    store = SqlKeptEvidence(db, max_rows=2, prune_every=3)
    for i in range(7):
        keep(store, T0 + dt.timedelta(seconds=i), i)
    # prunes ran on keeps 1, 4 and 7: at most max_rows remain right after the last one
    assert store.count() == 2


def test_the_service_keeps_what_it_appraised(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    h.service.kept = SqlKeptEvidence(db)
    evidence = h.pki.mint()
    ok = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    pcrs = FakeAwsPki.default_pcrs()
    pcrs[0] = b"\x42" * 48
    h.clock.at += dt.timedelta(seconds=1)
    bad = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=pcrs), policy="nonce-required"))
    newest, oldest = h.service.kept.recent(10)
    assert (oldest.appraisal_id, oldest.status, oldest.policy) == (ok.appraisal_id, "affirming", "default")
    assert oldest.evidence == evidence and oldest.tee == "nitro" and oldest.received_at == ok.appraised_at
    assert oldest.workload == "nitro pcr0 " + FakeAwsPki.default_pcrs()[0].hex()[:16]
    assert (newest.appraisal_id, newest.status, newest.policy) == (
        bad.appraisal_id,
        "contraindicated",
        "nonce-required",
    )
    assert newest.workload == "nitro pcr0 " + "42" * 8


def test_unparseable_evidence_is_not_kept(db: Database) -> None:
    h = make_harness(db)
    h.service.kept = store = SqlKeptEvidence(db)
    h.service.appraise(AppraisalRequest(tee="nitro", evidence=b"\xa0garbage"))
    assert store.count() == 0


def test_settings_from_the_environment() -> None:
    assert (Settings().keep_evidence, Settings().keep_evidence_days) == (1000, 7)
    s = from_environment({"VERIFIER_KEEP_EVIDENCE": "0", "VERIFIER_KEEP_EVIDENCE_DAYS": "2"})
    assert (s.keep_evidence, s.keep_evidence_days) == (0, 2)
    with pytest.raises(ConfigError):
        from_environment({"VERIFIER_KEEP_EVIDENCE": "many"})


def test_a_big_request_keeps_no_bytes(db: Database) -> None:
    """Issue 11 item 8: evidence and collateral together over 64 KiB keep nothing (each alone under its old cap)."""
    store = SqlKeptEvidence(db)
    assert keep(store, T0, evidence=b"e" * (40 * 1024), collateral={"a": b"c" * (40 * 1024)}) is None
    assert store.count() == 0
    small = SqlKeptEvidence(db, max_bytes=100)
    assert keep(small, T0, evidence=b"e" * 90, collateral={"a": b"c" * 11}) is None
    assert keep(small, T0, evidence=b"e" * 89, collateral={"a": b"c" * 11}) is not None
    assert store.count() == 1


def test_repeated_evidence_is_kept_once(db: Database) -> None:
    store = SqlKeptEvidence(db, max_days=7)
    first = keep(store, T0, 1)
    assert [keep(store, T0 + dt.timedelta(seconds=i), 1, appraisal_id=f"b-{i}") for i in range(1, 20)] == [first] * 19
    other = keep(store, T0, 2)
    assert other != first and store.count() == 2
    assert keep(store, T0 + dt.timedelta(days=8), 1) not in (None, first)  # past the retention: kept afresh
