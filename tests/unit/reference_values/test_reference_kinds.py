"""reference_values/kinds.py: each kind's length and match type, admin-value validation (the one place the CLI,
gRPC and manifests call), and the typed comparison appraisal uses (equal, at_least, masked)."""

from __future__ import annotations

import pytest

from verifier.errors import RequestError
from verifier.reference_values.kinds import (
    actual_text,
    expected_text,
    holds,
    known_kinds,
    normalize_value,
    satisfied,
    spec,
)

SMT_CLEAR_ECC_SET = "00000000000000050000000000000004"  # mask SMT_EN|ECC_EN, value ECC_EN


def test_new_kinds_are_typed_members() -> None:
    assert {"tdx.mr_servicetd", "snp.min_guest_svn", "snp.platform_info"} <= set(known_kinds())
    assert (spec("tdx.mr_servicetd").length, spec("tdx.mr_servicetd").match) == (48, "equal")
    assert (spec("snp.min_guest_svn").length, spec("snp.min_guest_svn").match) == (4, "at_least")
    assert (spec("snp.platform_info").length, spec("snp.platform_info").match) == (16, "masked")
    assert spec("snp.min_guest_svn").claim_name == "guest_svn"
    # existing kinds are unchanged: equality, same lengths
    assert {
        k: (spec(k).length, spec(k).match) for k in ("snp.measurement", "snp.host_data", "tdx.mr_td", "nitro.pcr0")
    } == {
        "snp.measurement": (48, "equal"),
        "snp.host_data": (32, "equal"),
        "tdx.mr_td": (48, "equal"),
        "nitro.pcr0": (48, "equal"),
    }


def test_normalize_typed_values() -> None:
    assert normalize_value("tdx.mr_servicetd", "11" * 48) == b"\x11" * 48
    assert normalize_value("snp.min_guest_svn", "0x00000003") == (3).to_bytes(4, "big")
    assert normalize_value("snp.platform_info", SMT_CLEAR_ECC_SET.upper()) == bytes.fromhex(SMT_CLEAR_ECC_SET)


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("tdx.mr_servicetd", "11" * 32, "REFERENCE_VALUE_LENGTH"),
        ("snp.min_guest_svn", "3", "REFERENCE_VALUE_NOT_HEX"),
        ("snp.min_guest_svn", "0003", "REFERENCE_VALUE_LENGTH"),
        ("snp.platform_info", "0000000000000001", "REFERENCE_VALUE_LENGTH"),
        ("snp.platform_info", "00000000000000000000000000000000", "REFERENCE_VALUE_INVALID"),  # pins nothing
        ("snp.platform_info", "00000000000000010000000000000002", "REFERENCE_VALUE_INVALID"),  # never matches
        ("snp.guest_svn", "00000003", "REFERENCE_KIND_UNKNOWN"),
    ],
)
def test_normalize_rejects(kind: str, value: str, code: str) -> None:
    with pytest.raises(RequestError) as err:
        normalize_value(kind, value)
    assert err.value.code == code


def test_length_error_explains_the_format() -> None:
    with pytest.raises(RequestError) as err:
        normalize_value("snp.min_guest_svn", "03")
    assert "00000003" in str(err.value)


def test_at_least() -> None:
    three = (3).to_bytes(4, "big")
    assert [holds("snp.min_guest_svn", three, f"{svn:08x}") for svn in (2, 3, 4, 0xFFFFFFFF)] == [
        False,
        True,
        True,
        True,
    ]
    assert not any(holds("snp.min_guest_svn", three, bad) for bad in ("not hex", "", "+0000004", "0000_004"))
    assert not holds("snp.min_guest_svn", (0).to_bytes(4, "big"), "-1")
    # several minimums are all required: adding a higher one tightens at once
    five = (5).to_bytes(4, "big")
    assert not satisfied("snp.min_guest_svn", [three, five], f"{4:08x}")
    assert satisfied("snp.min_guest_svn", [three, five], f"{5:08x}")
    assert expected_text("snp.min_guest_svn", [three, five], f"{4:08x}") == "guest_svn >= 5"
    assert actual_text("snp.min_guest_svn", f"{4:08x}") == "4"


def test_masked() -> None:
    member = bytes.fromhex(SMT_CLEAR_ECC_SET)
    assert holds("snp.platform_info", member, "0000000000000024")  # ECC_EN, ALIAS_CHECK_COMPLETE
    assert not holds("snp.platform_info", member, "0000000000000025")  # SMT_EN set
    assert not holds("snp.platform_info", member, "0000000000000020")  # ECC_EN clear
    tsme = bytes.fromhex("00000000000000020000000000000002")
    assert satisfied("snp.platform_info", [member, tsme], "0000000000000026")
    assert not satisfied("snp.platform_info", [member, tsme], "0000000000000024")
    assert expected_text("snp.platform_info", [member, tsme], "0000000000000024") == (
        "platform_info & 0x0000000000000002 == 0x0000000000000002 (TSME_EN=1)"
    )
    assert actual_text("snp.platform_info", "0000000000000025") == (
        "0x0000000000000025 (set: SMT_EN, ECC_EN, ALIAS_CHECK_COMPLETE)"
    )


def test_equal_alternatives_unchanged() -> None:
    a, b = b"\x01" * 48, b"\x02" * 48
    assert satisfied("tdx.mr_td", [a, b], "02" * 48) and not satisfied("tdx.mr_td", [a, b], "03" * 48)
    assert not satisfied("tdx.mr_td", [], "01" * 48)
    assert expected_text("tdx.mr_td", [b, a]) == f"{a.hex()} | {b.hex()}"
