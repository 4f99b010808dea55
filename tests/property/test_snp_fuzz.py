"""Property tests: parse_report and parse_cert_table return a value or raise ParseError, whatever the bytes; every
report that parses serializes back to the same bytes and yields JSON-able claims."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _vectors_dir, manifest_vectors
from tests.property.profiles import examples
from verifier.errors import ParseError
from verifier.tee.sevsnp.abi import REPORT_SIZE, parse_report, serialize_report
from verifier.tee.sevsnp.certtable import build_cert_table, parse_cert_table
from verifier.tee.sevsnp.claims import claims
from verifier.tee.sevsnp.tcb import Product, product_from_cpuid


def _seeds() -> list[bytes]:
    root = _vectors_dir()
    if root is None:
        return [bytes(REPORT_SIZE)]
    found = [Path(root, v["dir"], "evidence.bin").read_bytes() for v in manifest_vectors("snp")]
    return [data for data in found if len(data) == REPORT_SIZE]


SEEDS = _seeds()
FAST = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_report(data: bytes) -> None:
    try:
        report = parse_report(data)
    except ParseError as exc:
        assert exc.code.startswith("SNP_")
        return
    assert serialize_report(report) == data
    for product in (product_from_cpuid(report.cpuid_fam_id, report.cpuid_mod_id), *Product):
        json.dumps(claims(report, product))


@FAST
@given(st.binary(max_size=2 * REPORT_SIZE))
def test_arbitrary_bytes(data: bytes) -> None:
    _check_report(data)


@FAST
@given(st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE))
def test_arbitrary_report_sized_bytes(data: bytes) -> None:
    _check_report(data)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "set", "truncate", "extend"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=32))
    return bytes(data)


@FAST
@given(_mutated())
def test_mutated_reports(data: bytes) -> None:
    _check_report(data)


# Bytes that are fields in every version and product (not reserved): a change there must still parse and round-trip.
# Of the TCB_VERSION fields only bytes 0, 1 and 7 are components in every layout (2..6 are reserved in one).
_TCB_FIELDS = (0x38, 0x180, 0x1E0, 0x1F0)
_FREE = [
    offset
    for offset in (
        *range(0x04, 0x08),
        *range(0x10, 0x30),
        *range(0x38, 0x40),
        *range(0x50, 0x188),
        *range(0x1A0, 0x1EB),
        *range(0x1EC, 0x1EF),
        *range(0x1F0, 0x1F8),
        *range(0x2A0, 0x330),
    )
    if not any(base + 2 <= offset <= base + 6 for base in _TCB_FIELDS)
]


@FAST
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.sampled_from(_FREE), st.integers(0, 255)), min_size=1, max_size=8))
def test_valid_mutations_round_trip(seed: bytes, changes: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for offset, value in changes:
        data[offset] = value
    report = parse_report(bytes(data))
    assert serialize_report(report) == bytes(data)


def _check_table(data: bytes) -> None:
    try:
        table = parse_cert_table(data)
    except ParseError as exc:
        assert exc.code in ("SNP_CERT_TABLE_INVALID", "SNP_CERT_TABLE_TRUNCATED")
        return
    assert parse_cert_table(build_cert_table(table)) == table


@FAST
@given(st.binary(max_size=1024))
def test_cert_table_arbitrary_bytes(data: bytes) -> None:
    _check_table(data)


_NAMES = st.sampled_from(["vcek", "ask", "ark", "crl", "0f0e0d0c-0b0a-4908-8706-050403020100"])


@st.composite
def _mutated_table(draw: st.DrawFn) -> bytes:
    entries = draw(st.dictionaries(_NAMES, st.binary(min_size=1, max_size=40), max_size=5))
    data = bytearray(build_cert_table(entries))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "truncate", "extend"]))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        else:
            data += draw(st.binary(min_size=1, max_size=64))
        if not data:
            break
    return bytes(data)


@FAST
@given(_mutated_table())
def test_cert_table_mutations(data: bytes) -> None:
    _check_table(data)
