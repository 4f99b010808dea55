"""The SPDM report parser (verifier/tee/gpu/spdm.py, opaque.py) on reports minted by the fake NVIDIA PKI: the round
trip, and each structural or header problem refused with its own stable code."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from tests.fakes.nvidia_pki import Block, FakeNvidiaPki
from verifier.errors import ParseError
from verifier.tee.gpu import opaque, spdm

PKI = FakeNvidiaPki()


def _code(**overrides: Any) -> str:
    with pytest.raises(ParseError) as raised:
        spdm.parse(PKI.mint(**overrides))
    return raised.value.code


def test_a_minted_report_parses_and_round_trips() -> None:
    data = PKI.mint(nonce=bytes(range(32)))
    report = spdm.parse(data)
    assert spdm.encode(report) == data
    assert report.request.nonce == bytes(range(32)) and report.response.number_of_blocks == 64
    assert report.signed_bytes == data[:-96] and report.signature_offset == len(data) - 96
    assert report.response.opaque.driver_version == "550.90.07"
    assert report.response.opaque.vbios_version == "96.00.9f.00.01"
    assert report.response.opaque.fwid == PKI.fwid
    assert report.measurements[1] == PKI.blocks()[0].value
    assert opaque.encode(report.response.opaque) == data[report.opaque_offset : report.signature_offset]


def test_decode_keeps_a_refused_header_readable() -> None:
    report = spdm.decode(PKI.mint(request_version=0x10))
    assert report.request.version == 0x10
    with pytest.raises(ParseError) as raised:
        spdm.check(report)
    assert raised.value.code == "GPU_SPDM_VERSION_UNSUPPORTED"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"request_version": 0x10}, "GPU_SPDM_VERSION_UNSUPPORTED"),
        ({"request_version": 0x12}, "GPU_SPDM_VERSION_UNSUPPORTED"),
        ({"response_version": 0x10}, "GPU_SPDM_VERSION_UNSUPPORTED"),
        ({"request_code": 0xE1}, "GPU_SPDM_CODE_INVALID"),
        ({"response_code": 0x61}, "GPU_SPDM_CODE_INVALID"),
        ({"param1": 0}, "GPU_REQUEST_INVALID"),
        ({"param2": 1}, "GPU_REQUEST_INVALID"),
        ({"slot": 8}, "GPU_REQUEST_INVALID"),
        ({"blocks": [], "number_of_blocks": 0}, "GPU_MEASUREMENT_BLOCKS_NONE"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_versions_codes_and_parameters(overrides: dict[str, Any], code: str) -> None:
    assert _code(**overrides) == code


def test_trailing_bytes_are_refused() -> None:
    assert _code(trailing=b"\0") == "GPU_REPORT_TRAILING_BYTES"
    assert _code(trailing=PKI.mint()[-96:]) == "GPU_REPORT_TRAILING_BYTES"


def test_size_bounds() -> None:
    with pytest.raises(ParseError) as raised:
        spdm.parse(b"")
    assert raised.value.code == "GPU_REPORT_TRUNCATED"
    with pytest.raises(ParseError) as raised:
        spdm.parse(bytes(spdm.MAX_REPORT_BYTES + 1))
    assert raised.value.code == "GPU_REPORT_TOO_LARGE"
    for cut in (1, 36, 44, 45, 1000, 96, 97):
        data = PKI.mint()
        with pytest.raises(ParseError) as raised:
            spdm.parse(data[: cut if cut < 100 and cut not in (96, 97) else len(data) - cut])
        assert raised.value.code == "GPU_REPORT_TRUNCATED", cut


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        # MeasurementRecordLength (u24) past the end, one byte short, one byte long, the maximum
        ({"record_length": 0xFFFFFF}, "GPU_REPORT_TRUNCATED"),
        ({"record_length": 64 * 55 - 1}, "GPU_MEASUREMENT_RECORD_INVALID"),
        ({"record_length": 64 * 55 + 1}, "GPU_MEASUREMENT_RECORD_INVALID"),
        # OpaqueLength (u16) past the end, and shorter than the TLVs (the rest then does not parse as a signature)
        ({"opaque_length": 0xFFFF}, "GPU_REPORT_TRUNCATED"),
        ({"opaque_length": 10}, "GPU_REPORT_TRAILING_BYTES"),
        # NumberOfBlocks other than the blocks in the record
        ({"number_of_blocks": 63}, "GPU_MEASUREMENT_RECORD_INVALID"),
        ({"number_of_blocks": 65}, "GPU_MEASUREMENT_RECORD_INVALID"),
        # MeasurementSize past the record, DMTF size not filling it, shorter than the DMTF header
        ({"record": struct.pack("<BBH", 1, 1, 60) + bytes(51)}, "GPU_MEASUREMENT_RECORD_INVALID"),
        ({"record": struct.pack("<BBHBH", 1, 1, 51, 1, 47) + bytes(48)}, "GPU_MEASUREMENT_RECORD_INVALID"),
        ({"record": struct.pack("<BBHBH", 1, 1, 51, 1, 49) + bytes(48)}, "GPU_MEASUREMENT_RECORD_INVALID"),
        ({"record": struct.pack("<BBH", 1, 1, 2) + bytes(2)}, "GPU_MEASUREMENT_RECORD_INVALID"),
        ({"record": struct.pack("<BB", 1, 1), "number_of_blocks": 1}, "GPU_MEASUREMENT_RECORD_INVALID"),
        ({"blocks": [Block(1, bytes(48), specification=2)]}, "GPU_MEASUREMENT_SPEC_UNSUPPORTED"),
        ({"blocks": [Block(0, bytes(48))]}, "GPU_MEASUREMENT_INDEX_INVALID"),
        ({"blocks": [Block(255, bytes(48))]}, "GPU_MEASUREMENT_INDEX_INVALID"),
        ({"blocks": [Block(3, bytes(48)), Block(3, bytes(48))]}, "GPU_MEASUREMENT_INDEX_INVALID"),
    ],
    ids=lambda v: str(v)[:48],
)
def test_every_length_field_out_of_bounds(overrides: dict[str, Any], code: str) -> None:
    if "record" in overrides and "number_of_blocks" not in overrides:
        overrides["number_of_blocks"] = 1
    assert _code(**overrides) == code


def test_a_block_count_over_the_record_is_refused() -> None:
    record = FakeNvidiaPki.record(FakeNvidiaPki.blocks(2))
    assert _code(record=record, number_of_blocks=1) == "GPU_MEASUREMENT_RECORD_INVALID"
    assert _code(record=record, number_of_blocks=3) == "GPU_MEASUREMENT_RECORD_INVALID"


def _fields(**replace: bytes | None) -> list[tuple[int, bytes]]:
    by_name = {name: kind for kind, (name, _) in opaque.TYPES.items()}
    out = []
    for kind, value in PKI.opaque_fields():
        name = opaque.TYPES[kind][0]
        if name in replace:
            new = replace.pop(name)
            if new is None:
                continue
            value = new
        out.append((kind, value))
    out += [(by_name[name], value or b"") for name, value in replace.items()]
    return out


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "GPU_OPAQUE_EMPTY"),
        (b"\x03\x00\x0a", "GPU_OPAQUE_MALFORMED"),  # a TLV header cut short
        (struct.pack("<HH", 3, 20) + b"550.90.07\0", "GPU_OPAQUE_MALFORMED"),  # its size past the end
        (struct.pack("<HH", 3, 0xFFFF), "GPU_OPAQUE_MALFORMED"),
        (struct.pack("<HH", 26, 1) + b"\0", "GPU_OPAQUE_TYPE_UNKNOWN"),
        (struct.pack("<HH", 255, 1) + b"\0", "GPU_OPAQUE_TYPE_UNKNOWN"),  # 255 is INVALID
        (struct.pack("<HH", 0, 0), "GPU_OPAQUE_TYPE_UNKNOWN"),
    ],
)
def test_bad_opaque_data(raw: bytes, code: str) -> None:
    assert _code(opaque_raw=raw) == code


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        (_fields(DRIVER_VERSION=None), "GPU_OPAQUE_FIELD_MISSING"),
        (_fields(VBIOS_VERSION=None), "GPU_OPAQUE_FIELD_MISSING"),
        (_fields(VBIOS_VERSION=bytes(7)), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(FWID=bytes(47)), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(NVDEC0_STATUS=b"\x55\x55"), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(MSRSCNT=bytes(5)), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(DRIVER_VERSION=b"\0\0"), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(DRIVER_VERSION=b"550.90\x0107\0"), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(DRIVER_VERSION=b"550.90\0x"), "GPU_OPAQUE_FIELD_INVALID"),  # text after the NUL padding
        (_fields(PROJECT=b"10\xff0\0"), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(OPAQUE_DATA_VERSION=b""), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(FEATURE_FLAG=bytes(9)), "GPU_OPAQUE_FIELD_INVALID"),
        (_fields(SWITCH_PDI=bytes(12)), "GPU_OPAQUE_FIELD_INVALID"),
        ([*_fields(), (3, b"550.90.07\0")], "GPU_OPAQUE_TYPE_DUPLICATE"),
        ([*_fields(), (21, b"\x55")], "GPU_OPAQUE_TYPE_DUPLICATE"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_opaque_fields(fields: list[tuple[int, bytes]], code: str) -> None:
    assert _code(opaque=fields) == code


def test_every_defined_type_is_accepted_once_and_absent_optional_fields_are_fine() -> None:
    fields = _fields(FWID=None, SWITCH_PDI=bytes(16), FEATURE_FLAG=b"\x02", CHIP_INFO=b"GB100\0", GPU_LINK_CONN=b"\x01")
    report = spdm.parse(PKI.mint(opaque=fields))
    assert report.response.opaque.fwid is None
    assert report.response.opaque.get(36) == b"\x02"
    assert [f.name for f in report.response.opaque.fields][-1] == "GPU_LINK_CONN"


def test_vbios_format() -> None:
    assert opaque.format_vbios(bytes.fromhex("005e009601000000")) == "96.00.5e.00.01"
    with pytest.raises(ValueError):
        opaque.format_vbios(bytes(7))


def test_non_bytes_input_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        spdm.parse("not bytes")  # type: ignore[arg-type]
