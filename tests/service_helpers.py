"""Builds a real VerifierService over a migrated database, the fake AWS PKI and a settable clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tests.fakes.aws_pki import FakeAwsPki
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import VerifierService
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore


class SettableClock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


@dataclass
class Harness:
    pki: FakeAwsPki
    clock: SettableClock
    refs: SqlReferenceValueStore
    appraisals: SqlAppraisalStore
    service: VerifierService

    def approve(self, pcrs: dict[int, bytes] | None = None, label: str = "test-image") -> None:
        pcrs = pcrs or FakeAwsPki.default_pcrs()
        for index in (0, 1, 2):
            self.refs.add(f"nitro.pcr{index}", pcrs[index], label, now=self.clock.now() - dt.timedelta(days=1))


def make_harness(db: Database, pki: FakeAwsPki | None = None) -> Harness:
    pki = pki or FakeAwsPki()
    clock = SettableClock(pki.now)
    refs = SqlReferenceValueStore(db)
    appraisals = SqlAppraisalStore(db)
    service = VerifierService(
        clock=clock,
        anchors=pki.anchors(),
        references=refs,
        signer=ResultSigner([ephemeral_key()]),
        challenges=SqlChallengeStore(db),
        appraisals=appraisals,
        issuer="test-verifier",
    )
    return Harness(pki, clock, refs, appraisals, service)
