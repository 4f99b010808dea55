"""Issue 10: a database populated by the pre-workload schema (0004) migrates, and the appraisal that affirmed before
affirms after, naming its workload; a mix across labels that affirmed before (the flaw) no longer does."""

from __future__ import annotations

import datetime as dt

from tests.fakes.aws_pki import FakeAwsPki
from verifier.appraisal.model import Tier
from verifier.bootstrap import build
from verifier.clock import FixedClock
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage import migrate
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore


def test_appraisals_affirm_after_the_migration_naming_their_workload(database_url: str) -> None:
    pki = FakeAwsPki()
    pcrs = FakeAwsPki.default_pcrs()
    migrate.upgrade(database_url, "0004")
    database = Database(database_url)
    try:
        store = SqlReferenceValueStore(database)
        for index in (0, 1, 2):
            store.add(f"nitro.pcr{index}", pcrs[index], "my-enclave", version="1.4", now=pki.now - dt.timedelta(days=1))
        mixed = {**pcrs, 0: b"\x33" * 48}
        store.add("nitro.pcr0", mixed[0], "another-enclave", now=pki.now - dt.timedelta(days=1))  # PCR0 only
    finally:
        database.dispose()
    migrate.upgrade(database_url)
    built = build(Settings(database_url=database_url, development=True, check_crl=False), clock=FixedClock(pki.now))
    try:
        built.service.anchors = pki.anchors()
        result = built.service.appraise(AppraisalRequest(tee="nitro", evidence=pki.mint()))
        assert result.appraisal.status is Tier.AFFIRMING
        assert result.appraisal.workload is not None
        assert (result.appraisal.workload["name"], result.appraisal.workload["version"]) == ("my-enclave", "1.4")
        # Before, PCR0 of another-enclave with PCR1/PCR2 of my-enclave affirmed: a mix no one approved.
        mix = built.service.appraise(AppraisalRequest(tee="nitro", evidence=pki.mint(pcrs=mixed)))
        assert mix.appraisal.status is Tier.CONTRAINDICATED and mix.appraisal.workload is None
    finally:
        built.close()
