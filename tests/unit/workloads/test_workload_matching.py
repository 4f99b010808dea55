"""Issue 10: evidence is matched to one approved workload version as a whole, never to a mix of workloads.

Before, reference values were one flat pool matched kind by kind: two images sharing one value (Nitro PCR1 is
the same for every EIF built with one nitro-cli) carried each other's labels, and PCR0, PCR1 and PCR2 registered
under three different labels gave affirming for a combination nobody approved."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from typing import Any

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import Harness, make_harness
from verifier.appraisal.model import Tier
from verifier.appraisal.policy import Policy, PolicySet
from verifier.client.results import ResultError, verify_result
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database
from verifier.workloads.model import WorkloadMeta

DAY = dt.timedelta(days=1)
SHARED_PCR1 = FakeAwsPki.default_pcrs()[1]


def _pcrs(tag: bytes) -> dict[int, bytes]:
    pcrs = FakeAwsPki.default_pcrs()
    pcrs[0], pcrs[2] = tag * 48, tag.upper() * 48
    return pcrs


def _register(h: Harness, name: str, pcrs: dict[int, bytes], version: str | None = None) -> None:
    for index in (0, 1, 2):
        h.refs.add(f"nitro.pcr{index}", pcrs[index], name, now=h.clock.now() - DAY, version=version)


def _submod(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    submod: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["submods"]["nitro"]
    return submod


@pytest.fixture
def h(db: Database) -> Harness:
    harness = make_harness(db)
    _register(harness, "image-a", _pcrs(b"a"))
    _register(harness, "image-b", _pcrs(b"b"))  # shares PCR1 with image-a (same nitro-cli)
    return harness


def test_a_shared_value_never_lends_one_workloads_approval_to_another(h: Harness) -> None:
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"b"))))
    assert result.appraisal.status is Tier.AFFIRMING
    submod = _submod(result.token)
    assert submod["ear_verifier_claims"]["workload"] == {
        "name": "image-b",
        "version": "",
        "id": "image-b",
        "policy": "default",
        "status": "affirming",
    }
    assert [w["name"] for w in submod["ear_verifier_claims"]["workloads"]] == ["image-b"]
    assert all(":image-b:" in ref for ref in submod["ear_verifier_claims"]["matched_reference_values"])
    keys, now = h.service.jwks(), h.clock.now()
    assert verify_result(result.token, keys, now=now, required_workload="image-b").workload["name"] == "image-b"
    with pytest.raises(ResultError) as refused:
        verify_result(result.token, keys, now=now, required_workload="image-a")
    assert refused.value.code == "TOKEN_WORKLOAD_MISMATCH"
    with pytest.raises(ResultError):  # the pre-workload label check is held to the same rule
        verify_result(result.token, keys, now=now, required_labels=["image-a"])


def test_values_of_three_workloads_never_affirm_together(db: Database) -> None:
    h = make_harness(db)
    pcrs = FakeAwsPki.default_pcrs()
    for index, name in ((0, "zero"), (1, "one"), (2, "two")):
        h.refs.add(f"nitro.pcr{index}", pcrs[index], name, now=h.clock.now() - DAY)
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert result.appraisal.workload is None
    assert "workload" not in _submod(result.token)["ear_verifier_claims"]
    summary = result.appraisal.findings[-1]
    assert summary.code == "WORKLOAD_NOT_MATCHED" and summary.expected == "every value of one approved workload version"


def test_no_match_names_the_closest_workload_and_what_differs(h: Harness) -> None:
    pcrs = _pcrs(b"a")
    pcrs[2] = b"\x77" * 48
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=pcrs)))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    miss, summary = result.appraisal.findings
    assert miss.code == "REFERENCE_VALUE_MISMATCH" and miss.message.startswith("image-a: nitro.pcr2")
    assert miss.expected == (b"A" * 48).hex() and miss.actual == "77" * 48
    assert summary.actual == "closest: image-a (matched: nitro.pcr0, nitro.pcr1; differs: nitro.pcr2)"


def test_alternatives_of_one_kind_and_versions(db: Database) -> None:
    h = make_harness(db)
    _register(h, "app", _pcrs(b"c"), version="1.4")
    _register(h, "app", _pcrs(b"d"), version="1.5")
    h.refs.add("nitro.pcr2", b"\x55" * 48, "app", now=h.clock.now() - DAY, version="1.5")  # a second PCR2
    for tag, pcr2, version in ((b"c", None, "1.4"), (b"d", None, "1.5"), (b"d", b"\x55" * 48, "1.5")):
        pcrs = _pcrs(tag)
        if pcr2 is not None:
            pcrs[2] = pcr2
        result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=pcrs)))
        assert result.appraisal.status is Tier.AFFIRMING
        assert result.appraisal.workload is not None and result.appraisal.workload["version"] == version
        assert (
            verify_result(
                result.token, h.service.jwks(), now=h.clock.now(), required_workload="app", min_version="1.4"
            ).workload["version"]
            == version
        )
    old = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"c"))))
    with pytest.raises(ResultError) as refused:
        verify_result(old.token, h.service.jwks(), now=h.clock.now(), required_workload="app", min_version="1.10")
    assert refused.value.code == "TOKEN_WORKLOAD_VERSION_TOO_OLD"


class Catalog:
    def __init__(self, *metas: WorkloadMeta) -> None:
        self.metas = {m.name: m for m in metas}

    def metadata(self, names: Any) -> dict[str, WorkloadMeta]:
        return {n: self.metas[n] for n in names if n in self.metas}


def test_each_workload_is_appraised_under_its_own_policy(h: Harness) -> None:
    strict = Policy(policy_id="strict-a", require_nonce=True)
    svc = dataclasses.replace(
        h.service,
        policies=PolicySet({"strict-a": strict}),
        workloads=Catalog(WorkloadMeta("image-a", "nitro", id="w-a", policy="strict-a")),
    )
    a = svc.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"a"))))
    assert a.appraisal.policy_id == "strict-a" and [f.code for f in a.appraisal.findings] == ["NONCE_MISSING"]
    assert a.appraisal.workload is None or a.appraisal.workload["status"] == "contraindicated"
    b = svc.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"b"))))
    assert b.appraisal.status is Tier.AFFIRMING and b.appraisal.policy_id == "default"
    # A request naming a looser policy than the workload's does not decide the verdict.
    loose = svc.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"a")), policy="default"))
    assert loose.appraisal.policy_id == "strict-a" and loose.appraisal.status is Tier.CONTRAINDICATED
    assert "POLICY_LOOSER_THAN_WORKLOAD" in [f.code for f in loose.appraisal.findings]


def test_revoked_workloads_and_versions_do_not_match(h: Harness) -> None:
    evidence = h.pki.mint(pcrs=_pcrs(b"a"))
    now = h.clock.now()
    for meta in (
        WorkloadMeta("image-a", "nitro", revoked_at=now - DAY),
        WorkloadMeta("image-a", "nitro", revoked_versions=frozenset({""})),
        WorkloadMeta("image-a", "snp"),
    ):
        svc = dataclasses.replace(h.service, workloads=Catalog(meta))
        assert svc.appraise(AppraisalRequest(tee="nitro", evidence=evidence)).appraisal.status is Tier.CONTRAINDICATED


def test_an_unknown_workload_policy_fails_closed(h: Harness) -> None:
    svc = dataclasses.replace(h.service, workloads=Catalog(WorkloadMeta("image-a", "nitro", policy="gone")))
    result = svc.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"a"))))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert "WORKLOAD_POLICY_UNKNOWN" in [f.code for f in result.appraisal.findings]


def test_revoking_a_kinds_only_value_makes_the_version_unmatchable_not_looser(db: Database) -> None:
    h = make_harness(db)
    pcrs = _pcrs(b"e")
    _register(h, "app", pcrs)
    h.refs.add("nitro.pcr8", b"\x08" * 48, "app", now=h.clock.now() - DAY)
    signed_by_someone_else = h.pki.mint(pcrs={**pcrs, 8: b"\x09" * 48})
    assert (
        h.service.appraise(AppraisalRequest(tee="nitro", evidence=signed_by_someone_else)).appraisal.status
        is Tier.CONTRAINDICATED
    )
    pcr8 = next(r for r in h.refs.list(kind="nitro.pcr8", at=h.clock.now()))
    h.refs.revoke(pcr8.id, "signing certificate leaked", now=h.clock.now() - dt.timedelta(seconds=1))
    # PCR8 is still required of this version: with its only value revoked nothing matches, least of all another
    # PCR8 (before, the version shrank to PCR0..2 and affirmed).
    for evidence in (signed_by_someone_else, h.pki.mint(pcrs={**pcrs, 8: b"\x08" * 48})):
        result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
        assert result.appraisal.status is Tier.CONTRAINDICATED
        assert "REFERENCE_VALUE_MISSING" in [f.code for f in result.appraisal.findings]


def test_a_pending_kind_keeps_the_version_from_matching_until_it_is_valid(db: Database) -> None:
    h = make_harness(db)
    pcrs = _pcrs(b"f")
    _register(h, "app", pcrs)
    h.refs.add("nitro.pcr8", b"\x08" * 48, "app", now=h.clock.now() - DAY, valid_from=h.clock.now() + DAY)
    evidence = h.pki.mint(pcrs={**pcrs, 8: b"\x08" * 48})
    assert h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence)).appraisal.status is Tier.CONTRAINDICATED
