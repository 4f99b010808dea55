"""Tests for mutants that survived (or were not covered by) scripts/mutation.py in verifier/appraisal/binding.py,
model.py and policy.py (issue 16). Each pins, at the function's own seam, the behaviour one mutant changed; the
tighten-only rule (`weakenings`) is pinned in tests/unit/appraisal/test_mutants_policy_weakenings.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from verifier.appraisal.binding import DocumentBinding, ReportDataBinding, check_binding, expected_report_data
from verifier.appraisal.model import Claim, Finding, TrustVector, combine
from verifier.appraisal.policy import PolicySet, canonical_json, get_policy
from verifier.errors import ConfigError


# --- binding.py: expected_report_data, raw mode ------------------------------------------------------------------
def test_raw_report_data_refuses_a_nonce_over_64_bytes() -> None:
    with pytest.raises(ValueError, match="must fit in REPORT_DATA"):
        expected_report_data(b"\x01" * 65, None, "raw")


@pytest.mark.parametrize("size", [0, 1, 63, 64], ids=lambda n: f"{n}-bytes")
def test_raw_report_data_is_the_zero_padded_nonce_up_to_64_bytes(size: int) -> None:
    nonce = b"\x5a" * size
    assert expected_report_data(nonce, None, "raw") == nonce + b"\0" * (64 - size)


def test_sha512_report_data_hashes_nonce_and_runtime_data() -> None:
    assert expected_report_data(b"n", b"k", "sha512") == hashlib.sha512(b"nk").digest()


# --- binding.py: ReportDataBinding.check ----------------------------------------------------------------------
def test_raw_binding_accepts_a_nonce_of_exactly_64_bytes() -> None:
    nonce = bytes(range(64))
    assert ReportDataBinding().check({"report_data": nonce.hex()}, nonce, None, "raw") == []
    assert check_binding(ReportDataBinding(), {"report_data": nonce.hex()}, nonce, None, "raw") == []


def test_raw_binding_refuses_a_nonce_of_65_bytes() -> None:
    nonce = bytes(range(65))
    findings = ReportDataBinding().check({"report_data": nonce[:64].hex()}, nonce, None, "raw")
    assert [(f.code, f.actual) for f in findings] == [("NONCE_MISMATCH", "65 bytes")]


@pytest.mark.parametrize(
    ("mode", "how"),
    [("sha512", "SHA-512(nonce || runtime_data)"), ("raw", "the zero-padded nonce")],
    ids=["sha512", "raw"],
)
def test_report_data_mismatch_message_names_the_mode(mode: str, how: str) -> None:
    findings = ReportDataBinding().check({"report_data": "00" * 64}, b"\x01" * 32, None, mode)
    assert [(f.code, f.message) for f in findings] == [("REPORT_DATA_MISMATCH", f"REPORT_DATA is not {how}")]


# --- binding.py: DocumentBinding.evidence_key -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("claims", "key"),
    [
        ({"public_key": "ab" * 32}, b"\xab" * 32),
        ({"public_key": ""}, None),
        ({"public_key": b"\xab"}, None),
        ({"public_key": 7}, None),
        ({}, None),
    ],
    ids=["hex", "empty-string", "bytes-not-str", "int-not-str", "absent"],
)
def test_document_evidence_key_only_from_a_non_empty_hex_string(claims: dict[str, object], key: bytes | None) -> None:
    assert DocumentBinding().evidence_key(claims) == key


# --- model.py: combine ------------------------------------------------------------------------------------------
def test_combine_keeps_no_claim_for_a_finding_of_value_zero() -> None:
    finding = Finding(code="X", claim=Claim.HARDWARE, value=0, message="no claim")
    vector = combine({}, [finding])
    assert vector.values == {}
    assert vector == TrustVector({})


def test_combine_keeps_the_worse_value() -> None:
    worse = Finding(code="X", claim=Claim.HARDWARE, value=97, message="m")
    better = Finding(code="Y", claim=Claim.HARDWARE, value=2, message="m")
    assert combine({Claim.HARDWARE: 32}, [worse, better]).values == {Claim.HARDWARE: 97}


# --- policy.py: built-ins, from_file, canonical_json --------------------------------------------------------------
def test_the_nonce_required_built_in_requires_a_nonce() -> None:
    assert PolicySet().get("nonce-required").require_nonce is True
    assert get_policy("nonce-required").require_nonce is True
    assert get_policy(None).require_nonce is False


@pytest.mark.parametrize("text", ["{not json", None], ids=["bad-json", "missing-file"])
def test_from_file_refuses_an_unreadable_file(tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "policies.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as error:
        PolicySet.from_file(path)
    assert error.value.code == "POLICY_FILE_INVALID"
    assert "cannot read policy file" in str(error.value)


@pytest.mark.parametrize(
    "data",
    [{"policies": {}}, {"policies": {"id": "x"}}, [], {"other": []}, {"policies": "ab"}],
    ids=["policies-object", "policies-entry-object", "top-level-list", "no-policies-key", "policies-string"],
)
def test_from_file_refuses_a_file_not_shaped_policies_list(tmp_path: Path, data: object) -> None:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as error:
        PolicySet.from_file(path)
    assert error.value.code == "POLICY_FILE_INVALID"
    assert "expected {'policies': [...]}" in str(error.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), {"a": [float("nan")]}])
def test_canonical_json_refuses_nan_and_infinity(value: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(value)


def test_canonical_json_is_ascii_only() -> None:
    text = canonical_json({"b": "\u00e9", "a": "\u2603"})
    assert text == '{"a":"\\u2603","b":"\\u00e9"}'
    assert text.isascii()
