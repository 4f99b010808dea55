"""Issue 16: tests killing the mutation run's survivors in the TDX quote parser (verifier/tee/tdx/quote.py), the TCB
info / QE identity models (tcbinfo.py) and TCB level matching (tcb.py).

- Quote bounds: empty length-prefixed fields (QE authentication data) are legal; a PCK chain of exactly
  MAX_CERT_DATA_BYTES parses, one byte more is TDX_CERT_DATA_TOO_LARGE; serialize_body refuses a field of the wrong
  length (ValueError), never writes a body of the wrong size.
- Platform level (Intel QVL / dcap-qvl: the first level, in canonical order, whose every component is <= the
  platform's): without a module version (TEE_TCB_SVN[1] == 0) TDX components 0 and 1 count, equal is met and one
  below is not; with a module version they are the module identity's.
- Module identity: a level status outside UpToDate/OutOfDate/Revoked is TDX_TCB_STATUS_INVALID; MRSIGNERSEAM is
  checked against TDX_<TEE_TCB_SVN[1]> when there is a module version, else against tdxModule (even when a TDX_00
  identity exists).
- Component counts: 16 in TEE_TCB_SVN, TEE_TCB_SVN_2 and the PCK TCB, else TDX_TCB_LEVEL_NOT_FOUND; hand-built
  models whose component / attribute lengths disagree are never matched on a prefix.
- Collateral parsing: every malformation is TDX_COLLATERAL_MALFORMED (never a TypeError/KeyError), integers at
  their limit are accepted and one above is not, hex must be exactly 2*size hex digits, lists are bounded
  (MAX_LEVELS, MAX_MODULE_IDENTITIES, MAX_ADVISORIES) and advisory ids are 1..64-character strings.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from tests.fakes.intel_pki import FakeIntelPki
from verifier.errors import EvidenceError, ParseError
from verifier.tee.tdx.enclave_report import parse_enclave_report
from verifier.tee.tdx.pck import PckInfo, pck_info
from verifier.tee.tdx.quote import (
    BODY_TDX10,
    BODY_TDX15,
    MAX_CERT_DATA_BYTES,
    TD_REPORT10_SIZE,
    TD_REPORT15_SIZE,
    parse_quote,
    serialize_body,
    serialize_quote,
)
from verifier.tee.tdx.tcb import TcbResult, evaluate
from verifier.tee.tdx.tcbinfo import (
    MAX_ADVISORIES,
    MAX_LEVELS,
    MAX_MODULE_IDENTITIES,
    QeIdentity,
    TcbInfo,
    parse_qe_identity,
    parse_tcb_info,
)

PKI = FakeIntelPki()
SVN = bytes([3, 1, 2]) + bytes(13)  # the fake's TEE_TCB_SVN: module ISVSVN 3, TDX_01
NO_MODULE = bytes([3, 0, 2]) + bytes(13)  # no module version: TDX components 0 and 1 are the platform's
MALFORMED = "TDX_COLLATERAL_MALFORMED"


# --- quote.py ----------------------------------------------------------------------------------------------------


def test_empty_qe_auth_data_parses() -> None:
    quote = parse_quote(PKI.quote(qe_auth_data=b""))
    assert quote.qe_auth_data == b""
    assert quote.pck_chain_pem == PKI.pck_chain_pem()


def test_pck_chain_size_limit_is_inclusive() -> None:
    at_limit = parse_quote(PKI.quote(pck_chain_pem=b"\x00" * MAX_CERT_DATA_BYTES))
    assert len(at_limit.pck_chain_pem) == MAX_CERT_DATA_BYTES
    over = serialize_quote(dataclasses.replace(at_limit, pck_chain_pem=b"\x00" * (MAX_CERT_DATA_BYTES + 1)))
    with pytest.raises(ParseError) as info:
        parse_quote(over)
    assert info.value.code == "TDX_CERT_DATA_TOO_LARGE"


@pytest.mark.parametrize(
    ("body_type", "size"), [(BODY_TDX10, TD_REPORT10_SIZE), (BODY_TDX15, TD_REPORT15_SIZE)], ids=["td10", "td15"]
)
def test_serialize_body_sizes(body_type: int, size: int) -> None:
    assert len(serialize_body(PKI.td_report(body_type), body_type)) == size


@pytest.mark.parametrize(
    ("body_type", "field", "value"),
    [
        (BODY_TDX10, "mr_td", bytes(47)),
        (BODY_TDX10, "mr_td", bytes(49)),
        (BODY_TDX10, "report_data", b""),
        (BODY_TDX15, "mr_servicetd", bytes(47)),
        (BODY_TDX15, "tee_tcb_svn_2", None),
    ],
    ids=["short", "long", "empty", "td15-short", "td15-missing"],
)
def test_serialize_body_rejects_wrong_field(body_type: int, field: str, value: bytes | None) -> None:
    body = dataclasses.replace(PKI.td_report(body_type), **{field: value})
    with pytest.raises(ValueError, match=f"{field} must be"):
        serialize_body(body, body_type)


# --- tcb.py ------------------------------------------------------------------------------------------------------


def _evaluate(
    info: TcbInfo | dict[str, Any] | None = None,
    *,
    qe: QeIdentity | None = None,
    pck: PckInfo | None = None,
    svn: bytes = SVN,
    svn2: bytes | None = None,
    signer: bytes = bytes(48),
) -> TcbResult:
    tcb = info if isinstance(info, TcbInfo) else parse_tcb_info(info or PKI.tcb_info())
    return evaluate(
        tcb,
        qe or parse_qe_identity(PKI.qe_identity()),
        pck or pck_info(PKI.pck),
        parse_enclave_report(PKI.qe_report(bytes(64))),
        tee_tcb_svn=svn,
        mr_signer_seam=signer,
        seam_attributes=bytes(8),
        tee_tcb_svn_2=svn2,
    )


def _code(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(EvidenceError) as info:
        _evaluate(*args, **kwargs)
    return info.value.code


def _identity(ident: str, mrsigner: str, status: str = "UpToDate", isvsvn: int = 3) -> dict[str, Any]:
    return {
        "id": ident,
        "mrsigner": mrsigner,
        "attributes": "00" * 8,
        "attributesMask": "FF" * 8,
        "tcbLevels": [{"tcb": {"isvsvn": isvsvn}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": status}],
    }


@pytest.mark.parametrize(
    ("svn", "status"),
    [
        (NO_MODULE, "UpToDate"),  # component 0 equal to the top level's: met
        (bytes([2, 0, 2]) + bytes(13), "OutOfDate"),  # one below: only the lower level
        (bytes([3, 0, 1]) + bytes(13), "OutOfDate"),  # component 2, one below
    ],
    ids=["equal", "c0-one-below", "c2-one-below"],
)
def test_platform_level_without_module_version(svn: bytes, status: str) -> None:
    result = _evaluate(svn=svn)
    assert (result.status, result.platform_status, result.module_status) == (status, status, None)


def test_tdx_components_0_and_1_count_only_without_module_version() -> None:
    info = PKI.tcb_info()
    info["tcbLevels"][0]["tcb"]["tdxtcbcomponents"][1] = {"svn": 1}
    assert _evaluate(info, svn=NO_MODULE).status == "OutOfDate"  # 1 > TEE_TCB_SVN[1] == 0
    assert _evaluate(info, svn=bytes([3, 1, 2]) + bytes(13)).status == "UpToDate"  # left to the module identity


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("UpToDate", "UpToDate"),
        ("OutOfDate", "OutOfDate"),
        ("Revoked", "Revoked"),
        ("SWHardeningNeeded", "TDX_TCB_STATUS_INVALID"),
        ("ConfigurationNeeded", "TDX_TCB_STATUS_INVALID"),
        ("ConfigurationAndSWHardeningNeeded", "TDX_TCB_STATUS_INVALID"),
        ("OutOfDateConfigurationNeeded", "TDX_TCB_STATUS_INVALID"),
    ],
)
def test_module_level_status_must_be_a_module_status(status: str, expected: str) -> None:
    info = PKI.tcb_info(tdxModuleIdentities=[_identity("TDX_01", "00" * 48, status)])
    if expected.startswith("TDX_"):
        assert _code(info) == expected
    else:
        assert _evaluate(info).module_status == expected


def test_module_signer_comes_from_the_matching_identity() -> None:
    """With a module version, MRSIGNERSEAM is the TDX_01 identity's, not tdxModule's."""
    module = {"mrsigner": "11" * 48, "attributes": "00" * 8, "attributesMask": "FF" * 8}
    info = PKI.tcb_info(tdxModule=module, tdxModuleIdentities=[_identity("TDX_01", "00" * 48)])
    assert _evaluate(info, signer=bytes(48)).status == "UpToDate"
    assert _code(info, signer=b"\x11" * 48) == "TDX_MODULE_IDENTITY_MISMATCH"


def test_no_module_version_uses_tdx_module_even_with_a_tdx_00_identity() -> None:
    identities = [_identity("TDX_00", "22" * 48), _identity("TDX_01", "00" * 48)]
    info = PKI.tcb_info(tdxModuleIdentities=identities)  # tdxModule's mrsigner is zero
    assert _evaluate(info, svn=NO_MODULE, signer=bytes(48)).module_status is None
    assert _code(info, svn=NO_MODULE, signer=b"\x22" * 48) == "TDX_MODULE_IDENTITY_MISMATCH"


@pytest.mark.parametrize(
    ("svn", "components", "svn2", "actual"),
    [
        (SVN[:15], 16, None, "15/16/16"),
        (SVN + b"\x00", 16, None, "17/16/16"),
        (SVN, 15, None, "16/15/16"),
        (SVN, 17, None, "16/17/16"),
        (SVN, 16, SVN[:15], "16/16/15"),
        (SVN, 16, SVN + b"\x00", "16/16/17"),
    ],
    ids=["svn-15", "svn-17", "pck-15", "pck-17", "svn2-15", "svn2-17"],
)
def test_component_counts(svn: bytes, components: int, svn2: bytes | None, actual: str) -> None:
    pck = pck_info(PKI.pck)
    pck = dataclasses.replace(pck, tcb_components=(*pck.tcb_components, 0, 0)[:components])
    with pytest.raises(EvidenceError) as info:
        _evaluate(pck=pck, svn=svn, svn2=svn2)
    assert (info.value.code, info.value.actual) == ("TDX_TCB_LEVEL_NOT_FOUND", actual)


def test_sixteen_components_everywhere_evaluate() -> None:
    assert _evaluate(svn2=SVN).status == "UpToDate"


def _top_level_with(**fields: Any) -> TcbInfo:
    info = parse_tcb_info(PKI.tcb_info())
    return dataclasses.replace(info, tcb_levels=(dataclasses.replace(info.tcb_levels[0], **fields),))


def test_hand_built_level_with_17_sgx_components_is_not_matched_on_a_prefix() -> None:
    level = _top_level_with(sgx_components=(*PKI.tcb_components, 255))
    with pytest.raises(ValueError, match="zip"):
        _evaluate(level)


def test_hand_built_level_with_17_tdx_components_is_not_matched_on_a_prefix() -> None:
    level = _top_level_with(tdx_components=(*parse_tcb_info(PKI.tcb_info()).tcb_levels[0].tdx_components, 255))
    with pytest.raises(ValueError, match="zip"):
        _evaluate(level)


def test_hand_built_qe_identity_attributes_longer_than_the_mask() -> None:
    identity = parse_qe_identity(PKI.qe_identity())
    assert _evaluate(qe=identity).qe_status == "UpToDate"
    with pytest.raises(ValueError, match="zip"):
        _evaluate(qe=dataclasses.replace(identity, attributes=identity.attributes + b"\xff"))


# --- tcbinfo.py --------------------------------------------------------------------------------------------------


def _malformed(parse: Any, data: Any) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        parse(data)
    assert info.value.code == MALFORMED
    return info.value


def _with_level(change: Any) -> dict[str, Any]:
    info = PKI.tcb_info()
    change(info["tcbLevels"][0])
    return info


@pytest.mark.parametrize("data", [None, 5, "tdxModule", ["tdxModule"]], ids=["none", "int", "str", "list"])
def test_tcb_info_must_be_an_object(data: Any) -> None:
    _malformed(parse_tcb_info, data)


@pytest.mark.parametrize("data", [None, 5, "tcbLevels", ["tcbLevels"]], ids=["none", "int", "str", "list"])
def test_qe_identity_must_be_an_object(data: Any) -> None:
    _malformed(parse_qe_identity, data)


@pytest.mark.parametrize(
    "level",
    ["tcb", ["tcb"], {"tcb": "sgxtcbcomponents"}, {"tcb": ["sgxtcbcomponents"]}],
    ids=["str-level", "list-level", "str-tcb", "list-tcb"],
)
def test_non_object_level_is_malformed(level: Any) -> None:
    _malformed(parse_tcb_info, PKI.tcb_info(tcbLevels=[level]))


@pytest.mark.parametrize("component", [5, "svn", ["svn"]], ids=["int", "str", "list"])
def test_non_object_component_is_malformed(component: Any) -> None:
    _malformed(parse_tcb_info, _with_level(lambda lv: lv["tcb"].update(sgxtcbcomponents=[component] * 16)))


@pytest.mark.parametrize("key", ["fmspc", "pceId", "tcbType", "tcbLevels", "issueDate"])
def test_missing_tcb_info_key_is_malformed(key: str) -> None:
    info = PKI.tcb_info()
    del info[key]
    assert _malformed(parse_tcb_info, info).message == f"collateral field tcbInfo.{key} is malformed"


@pytest.mark.parametrize("key", ["pcesvn", "sgxtcbcomponents", "tdxtcbcomponents"])
def test_missing_level_key_is_malformed(key: str) -> None:
    _malformed(parse_tcb_info, _with_level(lambda lv: lv["tcb"].pop(key)))


def _svn(value: int) -> Any:
    return lambda lv: lv["tcb"]["sgxtcbcomponents"].__setitem__(0, {"svn": value})


def _pcesvn(value: int) -> Any:
    return lambda lv: lv["tcb"].update(pcesvn=value)


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [(_svn(0xFF), "sgx_components", 0xFF), (_pcesvn(0xFFFF), "pcesvn", 0xFFFF), (_svn(0), "sgx_components", 0)],
    ids=["svn-255", "pcesvn-65535", "svn-0"],
)
def test_integer_limits_are_inclusive(change: Any, field: str, value: int) -> None:
    level = parse_tcb_info(_with_level(change)).tcb_levels[0]
    got = getattr(level, field)
    assert (got[0] if isinstance(got, tuple) else got) == value


@pytest.mark.parametrize("change", [_svn(0x100), _pcesvn(0x10000), _svn(-1)], ids=["svn-256", "pcesvn-65536", "neg"])
def test_integers_above_their_limit_are_malformed(change: Any) -> None:
    _malformed(parse_tcb_info, _with_level(change))


def test_integer_limits_of_the_other_fields() -> None:
    assert parse_tcb_info(PKI.tcb_info(version=0xFFFFFFFF)).version == 0xFFFFFFFF
    _malformed(parse_tcb_info, PKI.tcb_info(version=0x100000000))
    assert parse_qe_identity(PKI.qe_identity(isvprodid=0xFFFF)).isvprodid == 0xFFFF
    _malformed(parse_qe_identity, PKI.qe_identity(isvprodid=0x10000))


@pytest.mark.parametrize("fmspc", ["ZZZZZZZZZZZZ", "90C06F 00 00", "90C06F00000", "90c06f00000000"])
def test_hex_must_be_exactly_2_size_hex_digits(fmspc: str) -> None:
    _malformed(parse_tcb_info, PKI.tcb_info(fmspc=fmspc))


def test_hex_accepts_either_case() -> None:
    assert parse_tcb_info(PKI.tcb_info(fmspc="90c06f000000")).fmspc == PKI.fmspc


def test_tcb_levels_bound_is_inclusive() -> None:
    info = PKI.tcb_info()
    lower = info["tcbLevels"][1]
    at_limit = parse_tcb_info(PKI.tcb_info(tcbLevels=[copy.deepcopy(lower) for _ in range(MAX_LEVELS)]))
    assert len(at_limit.tcb_levels) == MAX_LEVELS
    _malformed(parse_tcb_info, PKI.tcb_info(tcbLevels=[copy.deepcopy(lower) for _ in range(MAX_LEVELS + 1)]))


def test_module_identities_bound_is_inclusive() -> None:
    identity = _identity("TDX_01", "00" * 48)
    ok = parse_tcb_info(PKI.tcb_info(tdxModuleIdentities=[identity] * MAX_MODULE_IDENTITIES))
    assert len(ok.tdx_module_identities) == MAX_MODULE_IDENTITIES
    _malformed(parse_tcb_info, PKI.tcb_info(tdxModuleIdentities=[identity] * (MAX_MODULE_IDENTITIES + 1)))


def _advisories(ids: Any) -> dict[str, Any]:
    return _with_level(lambda lv: lv.update(advisoryIDs=ids))


@pytest.mark.parametrize(
    "ids",
    [
        ["INTEL-SA-00837"],
        ["A"],
        ["A" * 64],
        ["INTEL-SA-00001"] * MAX_ADVISORIES,
        [],
    ],
    ids=["one", "len-1", "len-64", "max-items", "empty-list"],
)
def test_advisory_ids_accepted(ids: list[str]) -> None:
    assert parse_tcb_info(_advisories(ids)).tcb_levels[0].advisory_ids == tuple(ids)


@pytest.mark.parametrize(
    "ids",
    [
        "INTEL-SA-00837",
        {"INTEL-SA-00837": 1},
        ["INTEL-SA-00001"] * (MAX_ADVISORIES + 1),
        [""],
        ["A" * 65],
        [["INTEL-SA-00837"]],
        [5],
        [None],
    ],
    ids=["str", "dict", "too-many", "empty-id", "len-65", "nested-list", "int", "none"],
)
def test_advisory_ids_rejected(ids: Any) -> None:
    _malformed(parse_tcb_info, _advisories(ids))


def test_qe_identity_advisories_and_levels_bounded() -> None:
    identity = PKI.qe_identity()
    identity["tcbLevels"][0]["advisoryIDs"] = ["A" * 65]
    _malformed(parse_qe_identity, identity)
    _malformed(parse_qe_identity, PKI.qe_identity(tcbLevels="tcb"))
