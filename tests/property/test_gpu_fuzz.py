"""Property tests: the NVIDIA SPDM report parser (verifier/tee/gpu/spdm.py, opaque.py) returns a report or raises
ParseError with a GPU_ code, whatever the bytes; every report that decodes encodes back to the same bytes and
yields JSON-able claims; and the whole GpuVerifier never raises for mutated genuine reports."""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _vectors_dir, manifest_vectors
from tests.fakes.nvidia_pki import FakeNvidiaPki
from tests.property.profiles import examples
from verifier.errors import ParseError
from verifier.tee.base import VerifyContext
from verifier.tee.gpu import claims as gpu_claims
from verifier.tee.gpu import opaque, spdm
from verifier.tee.gpu.verify import GpuVerifier

PKI = FakeNvidiaPki()


def _seeds() -> list[bytes]:
    root = _vectors_dir()
    found = [PKI.mint(), FakeNvidiaPki("blackwell").mint(fwid=b"\x01" * 48)]
    if root is not None:
        found += [Path(root, v["dir"], "evidence.bin").read_bytes() for v in manifest_vectors("gpu")]
    return found


SEEDS = _seeds()
FAST = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    try:
        report = spdm.decode(data)
    except ParseError as exc:
        assert exc.code.startswith("GPU_")
        return
    assert spdm.encode(report) == data
    json.dumps(gpu_claims.claims(report))
    try:
        spdm.check(report)
    except ParseError as exc:
        assert exc.code.startswith("GPU_")


@FAST
@given(st.binary(max_size=8192))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@FAST
@given(st.binary(max_size=512))
def test_arbitrary_bytes_behind_a_valid_header(tail: bytes) -> None:
    _check(SEEDS[0][: spdm.RECORD] + tail)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "length", "truncate", "extend"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "length" and len(data) > spdm.RECORD:  # the record length, a TLV or block size
            at = draw(st.sampled_from([spdm.RESPONSE + 5, pos]))
            data[at : at + 2] = struct.pack("<H", draw(st.integers(0, 0xFFFF)))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=32))
    return bytes(data)


@FAST
@given(_mutated())
def test_mutated_reports(data: bytes) -> None:
    _check(data)


@FAST
@given(st.lists(st.tuples(st.integers(0, 40), st.binary(max_size=64)), max_size=12))
def test_arbitrary_tlvs(fields: list[tuple[int, bytes]]) -> None:
    data = b"".join(struct.pack("<HH", kind, len(value)) + value for kind, value in fields)
    try:
        decoded = opaque.decode(data)
    except ParseError as exc:
        assert exc.code.startswith("GPU_OPAQUE_")
        return
    assert opaque.encode(decoded) == data
    assert decoded.driver_version and decoded.vbios_version


VERIFIER = GpuVerifier()
CONTEXT = VerifyContext(at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC), anchors=PKI.anchors(), collateral=PKI.collateral())


@settings(FAST, max_examples=examples(60))
@given(_mutated())
def test_the_verifier_never_raises(data: bytes) -> None:
    result = VERIFIER.verify(data, CONTEXT)
    assert result.failure is None or result.failure.code.startswith(("GPU_", "CHAIN_", "CERT_"))
    json.dumps(result.claims)
