"""SQL statements per steady-state appraisal of the service as the composition root builds it (SQLite and
PostgreSQL), counted with an SQLAlchemy `before_cursor_execute` listener: the reference values, workloads and
policies an appraisal reads cost no statement of their own: the reference-set version is read in the recording
transaction, where the version is checked, in the one SELECT that reads the audit chain's head under its lock;
every other statement records the appraisal. Before the hot cache (issue 13 item 3) the same appraisal made 9 on
SQLite: six reads (the request's policy, the version, active values, members, workload metadata, the workload's
policy) and three writes (appraisal row, audit head, audit row); before the version moved into the head's read, 4
(the version, appraisal row, audit head, audit row)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.storage.policies import SqlPolicies
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.manifest_model import ManifestEntry

HOT_TABLES = (
    "reference_set",
    "reference_values",
    "revoked_values",
    "workloads",
    "workload_version",
    "policies",
)
RECORDING_TABLES = ("appraisals", "audit_log", "challenges", "kept_evidence")


@pytest.fixture
def app(db: Database, database_url: str) -> Iterator[tuple[Components, FakeAwsPki]]:
    pki = FakeAwsPki()
    built = build(Settings(database_url=database_url, development=True), clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    yield built, pki
    built.close()


def _register(components: Components, pki: FakeAwsPki) -> None:
    """A workload with its own database policy: every read of steps 7b-8 is exercised."""
    database = components.database
    before = pki.now - dt.timedelta(days=1)
    SqlPolicies(database).set("enclave-policy", {}, now=before, actor="test")
    pcrs = FakeAwsPki.default_pcrs()
    entries = [ManifestEntry(f"nitro.pcr{i}", pcrs[i], "enclave", None, "1", None) for i in (0, 1, 2)]
    workloads = SqlWorkloads(database)
    workloads.add_values("enclave", entries, now=before, actor="test", tee="nitro")
    workloads.set_policy("enclave", "enclave-policy", now=before, actor="test")


def _count(components: Components, evidence: bytes) -> tuple[list[str], str]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = components.database.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = components.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return seen, result.appraisal.status.value


def _touches(statement: str, tables: tuple[str, ...]) -> bool:
    lowered = statement.lower()
    return any(f" {t}" in lowered for t in tables)


def test_a_steady_state_appraisal_reads_only_the_reference_set_version(app: tuple[Components, FakeAwsPki]) -> None:
    components, pki = app
    _register(components, pki)
    evidence = pki.mint()
    first, status = _count(components, evidence)  # loads the snapshot (and warms the verifier's own caches)
    assert status == "affirming"
    assert sum(_touches(q, HOT_TABLES) for q in first) > 1
    counts = []
    for _ in range(5):
        seen, status = _count(components, evidence)
        assert status == "affirming"
        reads = [q for q in seen if _touches(q, HOT_TABLES)]
        assert len(reads) == 1 and _touches(reads[0], ("audit_log",)), reads  # the chain's head and the version
        assert reads[0].startswith("SELECT (SELECT audit_log.seq"), reads
        rest = [q for q in seen if q not in reads]
        assert all(_touches(q, RECORDING_TABLES) or "pg_advisory_xact_lock" in q for q in rest), rest
        if components.database.dialect == "postgresql":  # the head (and version) is read once the lock is held
            lock = next(i for i, q in enumerate(seen) if "pg_advisory_xact_lock" in q)
            assert lock < seen.index(reads[0]), seen
        counts.append(len(seen))
    assert len(set(counts)) == 1  # the steady state: the same statements for every appraisal
    assert counts[0] <= 3 + 1  # appraisal row, audit head with the version, audit row (+ the PostgreSQL lock)
    assert components.hot is not None and components.hot.loads == 1


def test_a_change_costs_one_snapshot_load_then_the_steady_state_again(app: tuple[Components, FakeAwsPki]) -> None:
    components, pki = app
    _register(components, pki)
    evidence = pki.mint()
    _count(components, evidence)
    steady, _ = _count(components, evidence)
    SqlPolicies(components.database).set("enclave-policy", {"require_nonce": True}, now=pki.now, actor="test")
    changed, status = _count(components, evidence)
    assert status == "contraindicated"  # the workload's policy now requires a nonce: seen by the next appraisal
    assert len(changed) > len(steady)
    again, _ = _count(components, evidence)
    assert len(again) == len(steady)
    assert components.hot is not None and components.hot.loads == 2
