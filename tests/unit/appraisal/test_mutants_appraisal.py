"""Tests for mutants that survived scripts/mutation.py in verifier/appraisal (binding, nitro, tdx, policy,
references). Each goes through a public function and pins the behaviour one surviving mutant changed."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.unit.appraisal.test_appraisal_tdx import quote as tdx_quote
from tests.unit.appraisal.test_appraisal_tdx import tcb as tdx_tcb
from tests.unit.appraisal.test_appraisal_tdx import verified as tdx_verified
from verifier.appraisal import nitro as nitro_appraisal
from verifier.appraisal import tdx as tdx_appraisal
from verifier.appraisal.binding import BindingRule, check_binding
from verifier.appraisal.model import AFFIRMING, Claim
from verifier.appraisal.policy import Policy, SnpRules, TdxRules, policy_from_json, weakenings
from verifier.appraisal.references import check_references
from verifier.appraisal.registry import get_scheme, get_verifier
from verifier.errors import ConfigError
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import VerifiedEvidence, VerifyContext

AT = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
PCR = "11" * 48
MR_TD = "aa" * 48
NO_REQUIRED = Policy(policy_id="nothing-required", required_kinds={})


def _rule(kind: str) -> BindingRule:
    """The binding rule of evidence kind `kind`'s scheme, as the service passes it (`Scheme.binding`)."""
    return get_scheme(kind).binding


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(kind, kind, bytes.fromhex(value), "x", AT - dt.timedelta(days=1))


# --- binding.py: check_binding, Nitro runtime data --------------------------------------------------------------
@pytest.mark.parametrize(("carried", "shown"), [({"public_key": "cd" * 32}, "cd" * 32), ({}, "absent")])
def test_nitro_runtime_data_mismatch_shows_the_documents_public_key(carried: dict[str, str], shown: str) -> None:
    claims: dict[str, object] = {"nonce": "00" * 32, **carried}
    findings = check_binding(_rule("nitro"), claims, None, b"\xab" * 32, "sha512")
    assert [(f.code, f.expected, f.actual) for f in findings] == [("RUNTIME_DATA_MISMATCH", "ab" * 32, shown)]


# --- nitro.py: appraise, executables ----------------------------------------------------------------------------
@functools.cache
def nitro_verified() -> VerifiedEvidence:
    """A document minted by the fake AWS PKI with PCR0..2 = PCR (not debug mode), verified by the Nitro scheme."""
    pki = FakeAwsPki()
    evidence = pki.mint(pcrs={i: bytes.fromhex(PCR) for i in range(3)})
    verified = get_verifier("nitro").verify(evidence, VerifyContext(at=pki.now, anchors=pki.anchors()))
    assert verified.failure is None, verified.failure
    return verified


def test_nitro_nothing_required_and_no_references_does_not_affirm_executables() -> None:
    baseline, findings, matched = nitro_appraisal.appraise(nitro_verified(), NO_REQUIRED, [], AT)
    assert (findings, matched) == ([], [])
    assert Claim.EXECUTABLES not in baseline


def test_nitro_a_match_beside_a_reference_finding_does_not_affirm_executables() -> None:
    refs = [ref("nitro.pcr0", PCR), ref("nitro.pcr1", "22" * 48), ref("nitro.pcr2", PCR)]
    baseline, findings, matched = nitro_appraisal.appraise(nitro_verified(), Policy(), refs, AT)
    assert matched and [f.code for f in findings] == ["REFERENCE_VALUE_MISMATCH"]
    assert Claim.EXECUTABLES not in baseline


def test_nitro_all_required_pcrs_matched_affirms_executables() -> None:
    refs = [ref(f"nitro.pcr{n}", PCR) for n in range(3)]
    baseline, findings, _ = nitro_appraisal.appraise(nitro_verified(), Policy(), refs, AT)
    assert findings == [] and baseline[Claim.EXECUTABLES] == AFFIRMING


# --- tdx.py: appraise, executables and the grace period ---------------------------------------------------------


def test_tdx_nothing_required_and_no_references_does_not_affirm_executables() -> None:
    baseline, findings, matched = tdx_appraisal.appraise(tdx_verified(), NO_REQUIRED, [], AT)
    assert (findings, matched) == ([], [])
    assert Claim.EXECUTABLES not in baseline


def test_tdx_a_match_beside_an_executables_finding_does_not_affirm_executables() -> None:
    quote = tdx_quote(version=5, body_type=3, mr_servicetd=b"\x01" * 48)  # a service TD no tdx.mr_servicetd approves
    baseline, findings, matched = tdx_appraisal.appraise(tdx_verified(quote), Policy(), [ref("tdx.mr_td", MR_TD)], AT)
    assert matched and [(f.code, f.claim) for f in findings] == [("TDX_SERVICE_TD_NOT_APPROVED", Claim.EXECUTABLES)]
    assert Claim.EXECUTABLES not in baseline


def test_tdx_matched_mr_td_affirms_executables() -> None:
    baseline, findings, _ = tdx_appraisal.appraise(tdx_verified(), Policy(), [ref("tdx.mr_td", MR_TD)], AT)
    assert findings == [] and baseline[Claim.EXECUTABLES] == AFFIRMING


@pytest.mark.parametrize(("date", "within"), [("2025-05-01T00:00:00Z", True), ("2024-01-01T00:00:00Z", False)])
def test_tdx_not_accepted_status_says_whether_it_is_within_the_grace_period(date: str, within: bool) -> None:
    policy = Policy(tdx=TdxRules(grace_days=90))
    verified = tdx_verified(tdx_quote(), tdx_tcb("OutOfDate", date=date))
    _, findings, _ = tdx_appraisal.appraise(verified, policy, [ref("tdx.mr_td", MR_TD)], AT)
    (finding,) = [f for f in findings if f.code == "TDX_TCB_STATUS_NOT_ACCEPTED"]
    assert ("(within the grace period)" in finding.message) is within
    assert finding.message.startswith("Intel TCB status OutOfDate is not accepted by the policy")


# --- policy.py: weakenings (SNP minimum build) and the error text of a wrongly typed value ----------------------
@pytest.mark.parametrize(("candidate", "lower"), [(5, False), (6, False), (4, True), (None, True)])
def test_snp_minimum_build_weakening(candidate: int | None, lower: bool) -> None:
    base = Policy(policy_id="base", snp=SnpRules(minimum_build=5))
    other = Policy(policy_id="other", snp=SnpRules(minimum_build=candidate))
    assert ("snp: lower minimum build" in weakenings(other, base)) is lower


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        ({"id": "p", "require_nonce": "yes"}, 'not "yes"'),
        ({"id": "p", "snp": {"crl_fail_open": 1}}, "not 1"),
        ({"id": "p", "tdx": {"grace_days": "30"}}, 'not "30"'),
    ],
)
def test_a_wrongly_typed_policy_value_is_shown_as_json(entry: dict[str, Any], shown: str) -> None:
    with pytest.raises(ConfigError) as error:
        policy_from_json(entry)
    assert error.value.code == "POLICY_FILE_INVALID"
    assert error.value.message.endswith(shown), error.value.message


def test_a_value_json_cannot_encode_is_shown_by_its_type_name() -> None:
    with pytest.raises(ConfigError) as error:
        policy_from_json({"id": "p", "require_nonce": {1, 2}})
    assert error.value.message.endswith("not set"), error.value.message


# --- references.py: check_references, the mismatch message by kind ----------------------------------------------
def test_an_equal_kind_mismatch_matches_no_active_reference_value() -> None:
    findings, matched = check_references("tdx", {"tdx.mr_td": MR_TD}, ["tdx.mr_td"], [ref("tdx.mr_td", "cc" * 48)])
    assert matched == []
    assert [(f.code, f.message) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", "tdx.mr_td matches no active reference value")
    ]


def test_a_constraint_kind_mismatch_fails_a_reference_constraint() -> None:
    findings, matched = check_references(
        "snp", {"snp.min_guest_svn": "00000001"}, [], [ref("snp.min_guest_svn", "00000005")]
    )
    assert matched == []
    assert [(f.code, f.message) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", "snp.min_guest_svn fails a reference constraint")
    ]
