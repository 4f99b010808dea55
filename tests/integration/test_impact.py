"""Impact analysis: evidence from the fake AWS and AMD PKIs, appraised (and so kept) through the service, is
re-appraised against candidate reference-value sets without writing anything."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import SettableClock
from verifier.impact import ImpactRow, impact, impact_by_workload, impact_report, workload_report
from verifier.reference_values.model import ReferenceValue
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import AppraisalRequest, VerifierService
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.kept_evidence import SqlKeptEvidence
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.storage.tables import AppraisalRow, AuditRow, ChallengeRow, KeptEvidenceRow
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import TrustAnchors
from verifier.workloads.model import WorkloadMeta

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
PCR0_B = hashlib.sha384(b"workload-b").digest()
MEASUREMENT_C = hashlib.sha384(b"snp-c").digest()
MEASUREMENT_D = hashlib.sha384(b"snp-d").digest()


@pytest.fixture(scope="module")
def amd() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA, now=NOW)


@pytest.fixture(scope="module")
def aws() -> FakeAwsPki:
    return FakeAwsPki(NOW)


def snp_files(pki: FakeAmdPki) -> dict[str, bytes]:
    return {
        "vcek.der": pki.vcek.public_bytes(Encoding.DER),
        "ask.pem": pki.ask.public_bytes(Encoding.PEM),
        "ark.pem": pki.ark.public_bytes(Encoding.PEM),
    }


class World:
    def __init__(self, db: Database, aws: FakeAwsPki, amd: FakeAmdPki) -> None:
        self.db, self.aws, self.amd = db, aws, amd
        self.clock = SettableClock(NOW)
        self.refs = SqlReferenceValueStore(db)
        self.kept = SqlKeptEvidence(db)
        self.service = VerifierService(
            clock=self.clock,
            anchors=TrustAnchors(pins={**aws.pins, **amd.pins}),
            references=self.refs,
            signer=ResultSigner([ephemeral_key()]),
            challenges=SqlChallengeStore(db),
            appraisals=SqlAppraisalStore(db),
            kept=self.kept,
            check_crl=False,  # the fake PKIs serve no CRL
            reference_set_version=lambda: audit.reference_set_version(db),
        )
        approved = NOW - dt.timedelta(days=1)
        pcrs = FakeAwsPki.default_pcrs()
        for i in (0, 1, 2):
            self.refs.add(f"nitro.pcr{i}", pcrs[i], "workload-a", now=approved)
        self.refs.add("nitro.pcr0", PCR0_B, "workload-b", now=approved)
        for i in (1, 2):  # a workload is approved as a whole: B lists its own PCR1 and PCR2
            self.refs.add(f"nitro.pcr{i}", pcrs[i], "workload-b", now=approved)
        self.refs.add("snp.measurement", MEASUREMENT_C, "workload-c", now=approved)

    def tick(self) -> None:
        self.clock.at += dt.timedelta(seconds=10)

    def appraise_all(self) -> dict[str, str]:
        """A (Nitro, challenge nonce, nonce-required policy), B (Nitro), C (SNP) affirm; D (SNP) does not."""
        statuses: dict[str, str] = {}
        challenge = self.service.create_challenge()
        a = self.aws.mint(nonce=challenge.nonce)
        statuses["a"] = self.service.appraise(
            AppraisalRequest(tee="nitro", evidence=a, nonce=challenge.nonce, policy="nonce-required"),
            require_challenge=True,
        ).appraisal.status.value
        self.tick()
        pcrs = FakeAwsPki.default_pcrs()
        pcrs[0] = PCR0_B
        b = self.aws.mint(pcrs=pcrs, module_id="i-0fake-enc-b")
        statuses["b"] = self.service.appraise(AppraisalRequest(tee="nitro", evidence=b)).appraisal.status.value
        for name, measurement in (("c", MEASUREMENT_C), ("d", MEASUREMENT_D)):
            self.tick()
            request = AppraisalRequest(
                tee="snp", evidence=self.amd.report(measurement=measurement), collateral=snp_files(self.amd)
            )
            statuses[name] = self.service.appraise(request).appraisal.status.value
        return statuses

    def counts(self) -> dict[str, int]:
        with self.db.session() as session:
            return {
                t.__tablename__: int(session.scalar(select(func.count()).select_from(t)) or 0)
                for t in (AppraisalRow, AuditRow, ChallengeRow, KeptEvidenceRow)
            }

    def current(self) -> list[ReferenceValue]:
        return self.refs.list(at=self.clock.now())


@pytest.fixture
def world(db: Database, aws: FakeAwsPki, amd: FakeAmdPki) -> World:
    w = World(db, aws, amd)
    assert w.appraise_all() == {"a": "affirming", "b": "affirming", "c": "affirming", "d": "contraindicated"}
    # Much later: the Nitro leaf certificates (valid 3 hours) have expired since.
    w.clock.at = NOW + dt.timedelta(days=2)
    return w


def by_workload(rows: list[ImpactRow]) -> dict[str, ImpactRow]:
    return {r.workload: r for r in rows}


def workload(tee: str, value: bytes) -> str:
    return f"{tee} {'pcr0' if tee == 'nitro' else 'measurement'} {value.hex()[:16]}"


def test_the_current_set_changes_nothing_and_old_nitro_documents_still_verify(world: World) -> None:
    rows = impact(world.service, world.kept, world.current())
    assert len(rows) == 4
    assert [r.changed for r in rows] == [False] * 4
    assert [r.status_after for r in rows] == ["contraindicated", "affirming", "affirming", "affirming"]  # newest 1st
    assert impact_report(rows).startswith("impact: 4 kept appraisals re-appraised, 0 would change")


def test_revoking_one_workloads_pcr0_flips_exactly_that_workload(world: World) -> None:
    before = world.counts()
    revoked_at = world.clock.now() - dt.timedelta(seconds=1)
    candidate = [
        dataclasses.replace(r, revoked_at=revoked_at, revoke_reason="CVE")
        if r.kind == "nitro.pcr0" and r.value == PCR0_B
        else r
        for r in world.current()
    ]
    rows = impact(world.service, world.kept, candidate)
    changed = [r for r in rows if r.changed]
    assert len(changed) == 1
    (row,) = changed
    assert (row.tee, row.workload, row.status_before, row.status_after) == (
        "nitro",
        workload("nitro", PCR0_B),
        "affirming",
        "contraindicated",
    )
    assert "REFERENCE_VALUE_MISMATCH" in row.codes_after or "REFERENCE_VALUE_MISSING" in row.codes_after
    assert by_workload(rows)[workload("nitro", FakeAwsPki.default_pcrs()[0])].status_after == "affirming"
    report = impact_report(rows)
    assert "affirming -> contraindicated: 1 (1 workloads)" in report and row.evidence_id in report
    assert world.counts() == before  # nothing recorded, audited, consumed or kept


def test_adding_a_measurement_flips_a_contraindicated_workload_to_affirming(world: World) -> None:
    before = world.counts()
    new = ReferenceValue(
        id="candidate-1", kind="snp.measurement", value=MEASUREMENT_D, label="workload-d", created_at=world.clock.now()
    )
    rows = impact(world.service, world.kept, [*world.current(), new])
    (row,) = [r for r in rows if r.changed]
    assert (row.tee, row.workload, row.status_before, row.status_after, row.codes_after) == (
        "snp",
        workload("snp", MEASUREMENT_D),
        "contraindicated",
        "affirming",
        (),
    )
    assert world.counts() == before


def test_candidate_values_are_taken_as_active_at_the_given_instant(world: World) -> None:
    expiring = [dataclasses.replace(r, expires_at=NOW + dt.timedelta(days=10)) for r in world.current()]
    assert not any(r.changed for r in impact(world.service, world.kept, expiring))
    later = impact(world.service, world.kept, expiring, at=NOW + dt.timedelta(days=11))
    assert sorted(r.workload for r in later if r.changed) == sorted(
        [workload("nitro", FakeAwsPki.default_pcrs()[0]), workload("nitro", PCR0_B), workload("snp", MEASUREMENT_C)]
    )
    assert len(impact(world.service, world.kept, expiring, limit=2)) == 2


def test_an_item_that_cannot_be_reappraised_is_reported(world: World) -> None:
    with world.db.session() as session:
        session.query(KeptEvidenceRow).filter(KeptEvidenceRow.tee == "snp").update({"policy": "gone"})
    rows = impact(world.service, world.kept, world.current())
    snp = [r for r in rows if r.tee == "snp"]
    assert all(r.status_after == "error" and r.codes_after == ("POLICY_UNKNOWN",) and r.changed for r in snp)


def test_per_workload_which_evidence_starts_and_stops_matching(world: World) -> None:
    """Re-appraised under today's set and under the candidate, each result names its workload version: the report
    says per workload which kept evidence starts or stops matching it."""
    before = world.counts()
    revoked_at = world.clock.now() - dt.timedelta(seconds=1)
    candidate = [
        dataclasses.replace(r, revoked_at=revoked_at, revoke_reason="CVE")
        if r.kind == "nitro.pcr0" and r.value == PCR0_B
        else r
        for r in world.current()
    ]
    candidate.append(
        ReferenceValue(
            id="candidate-d",
            kind="snp.measurement",
            value=MEASUREMENT_D,
            label="workload-d",
            version="1",
            created_at=world.clock.now(),
        )
    )
    rows = impact(world.service, world.kept, candidate, current=world.current())
    assert {r.matched_before for r in rows} == {("workload-a", ""), ("workload-b", ""), ("workload-c", ""), None}
    by_name = {w.workload: w for w in impact_by_workload(rows)}
    assert sorted(by_name) == ["workload-b", "workload-d"]
    [stopped] = by_name["workload-b"].stops
    assert (stopped.status_before, stopped.status_after, stopped.matched_after) == (
        "affirming",
        "contraindicated",
        None,
    )
    [started] = by_name["workload-d"].starts
    assert (started.status_before, started.status_after, started.matched_after) == (
        "contraindicated",
        "affirming",
        ("workload-d", "1"),
    )
    report = workload_report(rows)
    assert "workload workload-b: 0 start matching, 1 stop matching, 0 change" in report
    assert f"  - evidence {stopped.evidence_id}" in report and f"  + evidence {started.evidence_id}" in report
    assert world.counts() == before
    # The candidate's workload metadata counts too (here: workload-c revoked as a workload).
    revoked = {"workload-c": WorkloadMeta("workload-c", "snp", revoked_at=NOW)}
    rows = impact(
        world.service, world.kept, world.current(), current=world.current(), catalog=revoked, current_catalog={}
    )
    [changed] = [r for r in rows if r.changed]
    assert (changed.matched_before, changed.matched_after, changed.status_after) == (
        ("workload-c", ""),
        None,
        "contraindicated",
    )
