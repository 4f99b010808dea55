"""Revocation under concurrent load, two apps on one SQLite file and on one PostgreSQL database (as two replicas):
while threads appraise through one app, whose group commit forms batches of several, the other revokes an
approved value. The audit chain orders every commit, so the invariant is exact: every appraisal recorded after the
revocation's row is contraindicated, and the chain verifies. Before the version was read under the chain's lock
(README, Stop 27), a batch that began before the revocation committed could be recorded after it, affirming."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from tests.integration.test_hot_path_revocation import Replicas, _entries
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.tables import AuditRow
from verifier.storage.workloads import SqlWorkloads

THREADS = 6
AFTER = 40  # appraisals recorded after the revocation before the load stops


@pytest.fixture
def replicas(db: Database, database_url: str) -> Iterator[Replicas]:
    pair = Replicas(database_url)
    yield pair
    pair.close()


def _chain(db: Database) -> list[tuple[int, str, dict[str, Any]]]:
    with db.session() as session:
        rows = session.execute(select(AuditRow.seq, AuditRow.action, AuditRow.details).order_by(AuditRow.seq))
        return [(int(seq), str(action), dict(details)) for seq, action, details in rows]


def test_no_appraisal_recorded_after_a_revocation_affirms(replicas: Replicas) -> None:
    r = replicas
    _, added = SqlWorkloads(r.admin.database).add_values("enclave", _entries("1"), now=r.now(), actor="t", tee="nitro")
    assert r.status() == "affirming"
    revoked, stop, errors = threading.Event(), threading.Event(), []
    after = [0]

    def appraise() -> None:
        try:
            while not stop.is_set():
                began_after = revoked.is_set()
                status = r.status()
                if began_after:
                    after[0] += 1
                    assert status == "contraindicated"  # asked after the revocation returned
        except BaseException as error:  # reported by the main thread
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=appraise) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60  # a stalled run fails below instead of holding CI
    try:
        group = r.serving.service.appraisals.group  # type: ignore[union-attr]
        while group.batches < 30 and not stop.is_set() and time.monotonic() < deadline:
            stop.wait(0.01)
        r.admin.references.revoke(added[0].id, "CVE", now=r.now())
        revoked.set()
        while after[0] < AFTER and not stop.is_set() and time.monotonic() < deadline:
            stop.wait(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    assert r.serving.service.appraisals.group.largest > 1  # type: ignore[union-attr]  # batches formed
    chain = _chain(r.serving.database)
    revocation = next(seq for seq, action, _ in chain if action == "ref.revoke")
    statuses = [details["status"] for seq, action, details in chain if action == "appraisal" and seq > revocation]
    assert len(statuses) >= AFTER and set(statuses) == {"contraindicated"}, statuses
    check = audit.verify_chain(r.serving.database)
    assert check.ok, check
