"""Revocation takes effect for the very next appraisal in every process, with the hot cache (issue 13 item 3): two
separate apps (each its own `Database`, engine, pool and cache, as two replicas or workers have) on one SQLite file
and on one PostgreSQL database. Every kind of change is made through one, the other appraises right after it,
with its cache warm: the change decides that appraisal. And a revocation by a separate OS process (the CLI)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.storage.policies import SqlPolicies
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.manifest_model import ManifestEntry

ROOT = Path(__file__).resolve().parents[2]
PCRS = FakeAwsPki.default_pcrs()


class Replicas:
    def __init__(self, database_url: str, now: dt.datetime | None = None) -> None:
        self.pki = FakeAwsPki(now) if now is not None else FakeAwsPki()
        self.url = database_url
        self.admin = self._app()  # where changes are made
        self.serving = self._app()  # where the next appraisal runs
        self.tick = self.pki.now - dt.timedelta(days=2)  # changes happen before the appraisals' fixed time

    def _app(self) -> Components:
        built = build(Settings(database_url=self.url, development=True), clock=FixedClock(self.pki.now))
        built.service.anchors = self.pki.anchors()
        return built

    def now(self) -> dt.datetime:
        self.tick += dt.timedelta(minutes=1)
        return self.tick

    def status(self) -> str:
        result = self.serving.service.appraise(AppraisalRequest(tee="nitro", evidence=self.pki.mint()))
        return result.appraisal.status.value

    def close(self) -> None:
        self.admin.close()
        self.serving.close()


@pytest.fixture
def replicas(db: Database, database_url: str) -> Iterator[Replicas]:
    pair = Replicas(database_url)
    yield pair
    pair.close()


def _entries(version: str) -> list[ManifestEntry]:
    return [ManifestEntry(f"nitro.pcr{i}", PCRS[i], "enclave", None, version, None) for i in (0, 1, 2)]


def test_every_change_through_one_app_decides_the_next_appraisal_of_the_other(replicas: Replicas) -> None:
    r = replicas
    refs, workloads = r.admin.references, SqlWorkloads(r.admin.database)
    policies = SqlPolicies(r.admin.database)
    assert r.status() == "contraindicated"  # nothing registered yet; the serving app's cache is loaded
    _, added = workloads.add_values("enclave", _entries("1"), now=r.now(), actor="t", tee="nitro")
    assert r.status() == "affirming"  # an add is seen at once too
    policies.set("strict", {"require_nonce": True}, now=r.now(), actor="t")  # no workload uses it yet
    assert r.status() == "affirming"

    steps: list[tuple[str, Callable[[], object], str]] = [
        ("ref revoke", lambda: refs.revoke(added[0].id, "CVE", now=r.now()), "contraindicated"),
        (
            "ref reapprove and add again",
            lambda: refs.reapprove(
                "nitro.pcr0", PCRS[0], "fixed", now=r.now(), label="enclave", version="1", actor="t"
            ),
            "affirming",
        ),
        ("ref expire", lambda: refs.expire(added[1].id, now=r.now()), "contraindicated"),
        ("ref add", lambda: refs.add("nitro.pcr1", PCRS[1], "enclave", now=r.now(), version="1"), "affirming"),
        (
            "workload version revoke",
            lambda: workloads.revoke_version("enclave", "1", "bad build", now=r.now(), actor="t"),
            "contraindicated",
        ),
        (
            "workload version add",
            lambda: workloads.add_values("enclave", _entries("2"), now=r.now(), actor="t", new_version=True),
            "affirming",
        ),
        (
            "workload policy",
            lambda: workloads.set_policy("enclave", "strict", now=r.now(), actor="t"),
            "contraindicated",
        ),
        ("policy set (loosened)", lambda: policies.set("strict", {}, now=r.now(), actor="t"), "affirming"),
        (
            "policy set (tightened)",
            lambda: policies.set("strict", {"require_nonce": True}, now=r.now(), actor="t"),
            "contraindicated",
        ),
        (
            "workload version policy",
            lambda: workloads.set_version_policy("enclave", "2", "default", now=r.now(), actor="t"),
            "affirming",
        ),
        ("workload revoke", lambda: workloads.revoke("enclave", "retired", now=r.now(), actor="t"), "contraindicated"),
    ]
    for name, change, expected in steps:
        assert r.status() != expected, name  # the serving app's cache holds the state before the change
        change()
        assert r.status() == expected, name  # the very next appraisal, in the other app
    hot = r.serving.hot
    assert hot is not None and hot.loads == len(steps) + 3  # one load per change, nothing else


def test_a_revocation_by_another_process_is_seen_by_the_next_appraisal(db: Database, database_url: str) -> None:
    # The CLI revokes at the wall clock: the appraisals run a little after it.
    r = Replicas(database_url, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    try:
        _revoked_elsewhere(r)
    finally:
        r.close()


def _revoked_elsewhere(r: Replicas) -> None:
    _, added = SqlWorkloads(r.admin.database).add_values("enclave", _entries("1"), now=r.now(), actor="t", tee="nitro")
    assert r.status() == "affirming"
    assert r.status() == "affirming"  # warm: this appraisal read only the version
    code = (
        "import sys; from verifier.cli import main; "
        f"sys.exit(main(['refs', 'revoke', {added[2].id!r}, '--reason', 'CVE-2026-1']))"
    )
    env = {**os.environ, "VERIFIER_DATABASE_URL": r.url}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert r.status() == "contraindicated"
