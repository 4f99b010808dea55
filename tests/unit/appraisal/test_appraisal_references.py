"""appraisal/references.py check_references with typed kinds: readable expected/actual for constraints, a pinned
claim the evidence lacks, other TEEs' values ignored, and equality kinds as before."""

from __future__ import annotations

import datetime as dt

from verifier.appraisal.model import Claim
from verifier.appraisal.references import check_references
from verifier.reference_values.model import ReferenceValue

AT = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
M = "11" * 48


def ref(kind: str, value: str, ref_id: str | None = None) -> ReferenceValue:
    return ReferenceValue(ref_id or kind, kind, bytes.fromhex(value), "w", AT)


def test_guest_svn_minimum() -> None:
    refs = [ref("snp.measurement", M), ref("snp.min_guest_svn", "00000003")]
    findings, matched = check_references(
        "snp", {"snp.measurement": M, "snp.min_guest_svn": "00000002"}, ["snp.measurement"], refs
    )
    assert [(f.code, f.expected, f.actual) for f in findings] == [("REFERENCE_VALUE_MISMATCH", "guest_svn >= 3", "2")]
    assert [r.kind for r in matched] == ["snp.measurement"]
    findings, matched = check_references(
        "snp", {"snp.measurement": M, "snp.min_guest_svn": "00000003"}, ["snp.measurement"], refs
    )
    assert findings == [] and {r.kind for r in matched} == {"snp.measurement", "snp.min_guest_svn"}


def test_partly_held_constraints_do_not_count_as_matched() -> None:
    refs = [ref("snp.min_guest_svn", "00000002", "a"), ref("snp.min_guest_svn", "00000004", "b")]
    findings, matched = check_references(
        "snp", {"snp.min_guest_svn": "00000003"}, [], refs, {"snp.min_guest_svn": Claim.EXECUTABLES}
    )
    assert [(f.code, f.claim, f.expected, f.actual) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", Claim.EXECUTABLES, "guest_svn >= 4", "3")
    ]
    assert matched == []


def test_platform_info_bits() -> None:
    refs = [ref("snp.platform_info", "00000000000000010000000000000000")]  # SMT_EN must be clear
    findings, _ = check_references("snp", {"snp.platform_info": "0000000000000025"}, [], refs)
    assert [(f.code, f.expected, f.actual) for f in findings] == [
        (
            "REFERENCE_VALUE_MISMATCH",
            "platform_info & 0x0000000000000001 == 0x0000000000000000 (SMT_EN=0)",
            "0x0000000000000025 (set: SMT_EN, ECC_EN, ALIAS_CHECK_COMPLETE)",
        )
    ]
    assert check_references("snp", {"snp.platform_info": "0000000000000024"}, [], refs)[0] == []


def test_a_pinned_claim_the_evidence_lacks_is_missing() -> None:
    # old code skipped a registered kind without a claim: a workload pinning MRSERVICETD matched a TD 1.0 report
    findings, matched = check_references(
        "tdx", {"tdx.mr_td": M}, ["tdx.mr_td"], [ref("tdx.mr_td", M), ref("tdx.mr_servicetd", "22" * 48)]
    )
    assert [(f.code, f.expected, f.actual) for f in findings] == [("CLAIM_MISSING", "tdx.mr_servicetd", "absent")]
    assert [r.kind for r in matched] == ["tdx.mr_td"]


def test_other_tees_values_are_ignored_and_equality_unchanged() -> None:
    refs = [
        ref("tdx.mr_td", M),
        ref("snp.measurement", "22" * 48),
        ref("tdx.rtmr0", "33" * 48, "r1"),
        ref("tdx.rtmr0", "44" * 48, "r2"),
    ]
    findings, matched = check_references("tdx", {"tdx.mr_td": M, "tdx.rtmr0": "44" * 48}, ["tdx.mr_td"], refs)
    assert findings == [] and sorted(r.id for r in matched) == ["r2", "tdx.mr_td"]
    findings, _ = check_references("tdx", {"tdx.mr_td": M, "tdx.rtmr0": "55" * 48}, ["tdx.mr_td"], refs)
    assert [(f.code, f.expected, f.actual) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", f"{'33' * 48} | {'44' * 48}", "55" * 48)
    ]


def test_hostile_actual_never_raises() -> None:
    refs = [ref("snp.min_guest_svn", "00000001"), ref("snp.platform_info", "00000000000000010000000000000001")]
    findings, matched = check_references("snp", {"snp.min_guest_svn": "zz", "snp.platform_info": ""}, [], refs)
    assert [f.code for f in findings] == ["REFERENCE_VALUE_MISMATCH", "REFERENCE_VALUE_MISMATCH"] and matched == []
