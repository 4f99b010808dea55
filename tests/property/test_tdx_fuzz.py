"""Property tests: parse_quote and parse_enclave_report return a value or raise ParseError, whatever the bytes
(arbitrary input, and real quotes with flipped bytes, truncations and edited length/type fields); every quote
that parses serializes back to the same bytes and yields JSON-able claims."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _vectors_dir, manifest_vectors
from tests.property.profiles import examples
from verifier.errors import ParseError
from verifier.tee.tdx.claims import claims
from verifier.tee.tdx.enclave_report import ENCLAVE_REPORT_SIZE, parse_enclave_report
from verifier.tee.tdx.quote import parse_quote, serialize_quote


def _seeds() -> list[bytes]:
    root = _vectors_dir()
    if root is None:
        return []
    return [Path(root, v["dir"], "evidence.bin").read_bytes() for v in manifest_vectors("tdx")]


SEEDS = _seeds() or [bytes(1024)]
FAST = settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _length_fields(data: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of every type/length field of a seed (header, v5 descriptor, signature data)."""
    try:
        quote = parse_quote(data)
    except ParseError:
        return [(0, "<H"), (2, "<H"), (4, "<I")]
    sig = len(quote.signed)
    cert = sig + 4 + 128
    auth = cert + 6 + 448
    inner = auth + 2 + len(quote.qe_auth_data)
    fields = [
        (0, "<H"),
        (2, "<H"),
        (4, "<I"),
        (sig, "<I"),
        (cert, "<H"),
        (cert + 2, "<I"),
        (auth, "<H"),
        (inner, "<H"),
        (inner + 2, "<I"),
    ]
    return fields + ([(48, "<H"), (50, "<I")] if quote.version == 5 else [])


FIELDS = [_length_fields(seed) for seed in SEEDS]


def _check(data: bytes) -> None:
    try:
        quote = parse_quote(data)
    except ParseError as exc:
        assert exc.code.startswith("TDX_")
        return
    assert serialize_quote(quote) == data
    assert data.startswith(quote.signed) and data.endswith(quote.trailing)
    json.dumps(claims(quote, None))


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@FAST
@given(st.binary(min_size=48, max_size=48), st.binary(max_size=1200))
def test_valid_header_then_garbage(header: bytes, rest: bytes) -> None:
    version = 5 if header[0] & 1 else 4
    _check(struct.pack("<HHI", version, 2, 0x81) + header[8:] + rest)


@FAST
@given(
    st.sampled_from(range(len(SEEDS))), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 255)), max_size=6)
)
def test_byte_flips(seed: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SEEDS[seed])
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    _check(bytes(data))


@FAST
@given(st.sampled_from(range(len(SEEDS))), st.data())
def test_truncations_and_extensions(seed: int, draw: st.DataObject) -> None:
    data = SEEDS[seed]
    cut = draw.draw(st.integers(0, len(data)))
    _check(data[:cut])
    _check(data + draw.draw(st.binary(max_size=64)))


@FAST
@given(st.sampled_from(range(len(SEEDS))), st.data())
def test_length_field_edits(seed: int, draw: st.DataObject) -> None:
    data = bytearray(SEEDS[seed])
    for offset, fmt in draw.draw(st.lists(st.sampled_from(FIELDS[seed]), min_size=1, max_size=3)):
        limit = (1 << (8 * struct.calcsize(fmt))) - 1
        current = struct.unpack_from(fmt, data, offset)[0]
        value = draw.draw(st.one_of(st.integers(0, limit), st.integers(max(0, current - 8), min(limit, current + 8))))
        struct.pack_into(fmt, data, offset, value)
    _check(bytes(data))


@FAST
@given(st.one_of(st.binary(max_size=400), st.binary(min_size=ENCLAVE_REPORT_SIZE, max_size=ENCLAVE_REPORT_SIZE)))
def test_enclave_report(raw: bytes) -> None:
    try:
        report = parse_enclave_report(raw)
    except ParseError as exc:
        assert exc.code == "TDX_QE_REPORT_INVALID" and len(raw) != ENCLAVE_REPORT_SIZE
        return
    assert report.raw == raw and report.cpusvn + raw[16:] == raw
    assert report.isvsvn == int.from_bytes(raw[258:260], "little")
    assert all(raw[i] for i in report.reserved_nonzero)
