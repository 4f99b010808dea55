"""The NVIDIA GPU attestation report: the SPDM 1.1 GET_MEASUREMENTS request the driver sent, immediately followed
by the GPU's signed MEASUREMENTS response (DMTF DSP0274 1.1 sections 10.11; NVML
`nvmlDeviceGetConfComputeGpuAttestationReport`).

Layout (offsets in the report; L1 = MeasurementRecordLength, L2 = OpaqueLength):

    request   0 SPDMVersion (0x11)  1 RequestResponseCode (0xE0 GET_MEASUREMENTS)  2 Param1 (bit 0: signature
              requested)  3 Param2 (0xFF: all measurements)  4..35 Nonce (the verifier's)  36 SlotIDParam
    response 37 SPDMVersion (0x11)  38 RequestResponseCode (0x60 MEASUREMENTS)  39 Param1  40 Param2
             41 NumberOfBlocks  42..44 MeasurementRecordLength (u24 LE)  45 MeasurementRecord (L1 bytes)
             45+L1 Nonce (the responder's, 32)  77+L1 OpaqueLength (u16 LE)  79+L1 OpaqueData (L2 bytes)
             79+L1+L2 Signature (96 bytes: ECDSA P-384 raw r || s, big-endian)

The signature covers bytes 0 .. signature_offset - 1 (request || response up to the signature, DSP0274 1.1
"MEASUREMENTS" signature over L1/L2 = the messages of the exchange). The signature is located from the length
fields, never taken as "the last 96 bytes"; a byte after it is refused (GPU_REPORT_TRAILING_BYTES), so nothing that
is not signed is ever read, hashed or reported.

A measurement block (DSP0274 "Measurement block format"): Index (u8), MeasurementSpecification (u8, bit 0 = DMTF;
only 0x01 is accepted, as every NVIDIA verifier does), MeasurementSize (u16 LE), then the DMTF measurement:
DMTFSpecMeasurementValueType (u8), DMTFSpecMeasurementValueSize (u16 LE), the value.

Two steps, both pure (no crypto, no I/O): `decode` reads the structure and raises ParseError for anything that makes
the byte layout wrong or ambiguous (lengths, record not consumed exactly, the opaque TLVs, trailing bytes); `check`
then holds the header values to what this verifier accepts (versions, codes, the request's parameters, at least one
block), so that claims can be read from a report whose header is refused. `parse` is both."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ...errors import ParseError
from . import opaque as opaque_data
from .opaque import OpaqueData

SPDM_VERSION = 0x11  # SPDM 1.1
GET_MEASUREMENTS = 0xE0
MEASUREMENTS = 0x60
REQUEST_LENGTH = 37  # nv-local-gpu-verifier LENGTH_OF_SPDM_GET_MEASUREMENT_REQUEST_MESSAGE
NONCE_LENGTH = 32
REQUEST_NONCE = 4  # offset of the request's nonce
REQUEST_SLOT = 36
RESPONSE = REQUEST_LENGTH  # the response starts right after the request
RESPONSE_FIXED = 8  # SPDMVersion, code, Param1, Param2, NumberOfBlocks, MeasurementRecordLength (3)
RECORD = RESPONSE + RESPONSE_FIXED  # 45: the measurement record
OPAQUE_LENGTH_BYTES = 2
SIGNATURE_LENGTH = 96  # ECDSA P-384 raw r || s (HopperSettings.signature_length; Blackwell the same)
MINIMUM_LENGTH = RECORD + NONCE_LENGTH + OPAQUE_LENGTH_BYTES + SIGNATURE_LENGTH
MAX_REPORT_BYTES = 64 * 1024  # a real report is about 4 KB; bounded before anything is read
BLOCK_HEADER = 4  # Index, MeasurementSpecification, MeasurementSize (u16)
DMTF_HEADER = 3  # DMTFSpecMeasurementValueType, DMTFSpecMeasurementValueSize (u16)
DMTF_SPECIFICATION = 0x01
SIGNATURE_REQUESTED = 0x01  # Param1 bit 0 of GET_MEASUREMENTS
ALL_MEASUREMENTS = 0xFF  # Param2 of GET_MEASUREMENTS
RESERVED_INDICES = (0x00, 0xFF)  # 0: the total count, 0xFF: "all" (DSP0274 Param2 values), never a block's index
MAX_SLOT = 7


@dataclass(frozen=True)
class MeasurementBlock:
    """One measurement block with its DMTF measurement."""

    index: int
    specification: int
    value_type: int  # DMTFSpecMeasurementValueType: bit 7 raw bitstream, bits 0-6 the component type
    value: bytes


@dataclass(frozen=True)
class SpdmRequest:
    """The GET_MEASUREMENTS request (bytes 0..36)."""

    version: int
    code: int
    param1: int
    param2: int
    nonce: bytes  # the verifier's 32-byte challenge
    slot_id: int


@dataclass(frozen=True)
class SpdmResponse:
    """The MEASUREMENTS response (from byte 37), opaque data decoded."""

    version: int
    code: int
    param1: int
    param2: int
    number_of_blocks: int
    record_length: int
    blocks: tuple[MeasurementBlock, ...]
    nonce: bytes  # the responder's own nonce: says nothing about freshness
    opaque_length: int
    opaque: OpaqueData
    signature: bytes


@dataclass(frozen=True)
class SpdmReport:
    """The whole report: `raw` (exactly the bytes given), the request, the response and where the signature is."""

    raw: bytes
    request: SpdmRequest
    response: SpdmResponse

    @property
    def opaque_offset(self) -> int:
        """Offset of the opaque data in `raw`. Never raises."""
        return RECORD + self.response.record_length + NONCE_LENGTH + OPAQUE_LENGTH_BYTES

    @property
    def signature_offset(self) -> int:
        """Offset of the signature in `raw`: the number of signed bytes. Never raises."""
        return self.opaque_offset + self.response.opaque_length

    @property
    def signed_bytes(self) -> bytes:
        """What the signature covers: bytes 0 .. signature_offset - 1. Never raises."""
        return self.raw[: self.signature_offset]

    @property
    def measurements(self) -> dict[int, bytes]:
        """Block index -> measurement value. Never raises."""
        return {block.index: block.value for block in self.response.blocks}


def _fail(code: str, message: str, expected: str = "", actual: str = "") -> ParseError:
    return ParseError(code, message, expected=expected, actual=actual)


def _request(raw: bytes) -> SpdmRequest:
    version, code, param1, param2 = raw[0:4]
    nonce = raw[REQUEST_NONCE : REQUEST_NONCE + NONCE_LENGTH]
    return SpdmRequest(version, code, param1, param2, nonce, raw[REQUEST_SLOT])


def _block(record: bytes, offset: int) -> tuple[MeasurementBlock, int]:
    """The block at `offset` of the record and the offset after it; raises ParseError."""
    if len(record) - offset < BLOCK_HEADER:
        raise _fail("GPU_MEASUREMENT_RECORD_INVALID", "a block header runs past the record", actual=f"offset {offset}")
    index, specification, size = struct.unpack_from("<BBH", record, offset)
    start = offset + BLOCK_HEADER
    if size > len(record) - start:
        raise _fail(
            "GPU_MEASUREMENT_RECORD_INVALID",
            f"block {index} runs past the record",
            f"<= {len(record) - start}",
            str(size),
        )
    if specification != DMTF_SPECIFICATION:
        raise _fail(
            "GPU_MEASUREMENT_SPEC_UNSUPPORTED",
            f"block {index} is not a DMTF measurement",
            f"{DMTF_SPECIFICATION:#04x}",
            f"{specification:#04x}",
        )
    if size < DMTF_HEADER:
        raise _fail("GPU_MEASUREMENT_RECORD_INVALID", f"block {index} is shorter than a DMTF header", "3", str(size))
    value_type, value_size = struct.unpack_from("<BH", record, start)
    if value_size != size - DMTF_HEADER:
        raise _fail(
            "GPU_MEASUREMENT_RECORD_INVALID",
            f"block {index}: DMTFSpecMeasurementValueSize does not fill MeasurementSize",
            str(size - DMTF_HEADER),
            str(value_size),
        )
    value = record[start + DMTF_HEADER : start + size]
    return MeasurementBlock(index, specification, value_type, value), start + size


def _blocks(record: bytes, count: int) -> tuple[MeasurementBlock, ...]:
    """Exactly `count` blocks filling the record exactly, each index once; raises ParseError."""
    blocks: list[MeasurementBlock] = []
    offset = 0
    while offset < len(record):
        if len(blocks) == count:
            raise _fail("GPU_MEASUREMENT_RECORD_INVALID", "bytes after the last block", str(count), f"offset {offset}")
        block, offset = _block(record, offset)
        if block.index in RESERVED_INDICES or any(b.index == block.index for b in blocks):
            raise _fail(
                "GPU_MEASUREMENT_INDEX_INVALID", "reserved or repeated block index", "1..254, once", str(block.index)
            )
        blocks.append(block)
    if len(blocks) != count:
        raise _fail("GPU_MEASUREMENT_RECORD_INVALID", "NumberOfBlocks blocks expected", str(count), str(len(blocks)))
    return tuple(blocks)


def _need(raw: bytes, end: int, what: str) -> None:
    if end > len(raw):
        raise _fail("GPU_REPORT_TRUNCATED", f"the report ends inside {what}", f">= {end} bytes", str(len(raw)))


def decode(data: bytes) -> SpdmReport:
    """Read the report's structure (module docstring) without judging its header values (`check`). Raises
    ParseError: GPU_REPORT_TOO_LARGE, GPU_REPORT_TRUNCATED, GPU_REPORT_TRAILING_BYTES, GPU_MEASUREMENT_RECORD_INVALID,
    GPU_MEASUREMENT_SPEC_UNSUPPORTED, GPU_MEASUREMENT_INDEX_INVALID and the opaque data's codes (`opaque.decode`)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _fail("GPU_REPORT_TRUNCATED", "the report must be bytes", actual=type(data).__name__)
    raw = bytes(data)
    if len(raw) > MAX_REPORT_BYTES:
        raise _fail("GPU_REPORT_TOO_LARGE", "report too large", f"<= {MAX_REPORT_BYTES}", str(len(raw)))
    _need(raw, MINIMUM_LENGTH, "the fixed fields")
    version, code, param1, param2, count = raw[RESPONSE : RESPONSE + 5]
    record_length = int.from_bytes(raw[RESPONSE + 5 : RECORD], "little")
    nonce_at = RECORD + record_length
    _need(raw, nonce_at + NONCE_LENGTH + OPAQUE_LENGTH_BYTES, "the measurement record")
    blocks = _blocks(raw[RECORD:nonce_at], count)  # before anything located behind the record is read
    opaque_at = nonce_at + NONCE_LENGTH + OPAQUE_LENGTH_BYTES
    opaque_length = int.from_bytes(raw[opaque_at - OPAQUE_LENGTH_BYTES : opaque_at], "little")
    signature_at = opaque_at + opaque_length
    _need(raw, signature_at + SIGNATURE_LENGTH, "the opaque data or the signature")
    if len(raw) != signature_at + SIGNATURE_LENGTH:
        raise _fail(
            "GPU_REPORT_TRAILING_BYTES",
            "bytes after the signature (never signed: refused)",
            str(signature_at + SIGNATURE_LENGTH),
            str(len(raw)),
        )
    response = SpdmResponse(
        version=version,
        code=code,
        param1=param1,
        param2=param2,
        number_of_blocks=count,
        record_length=record_length,
        blocks=blocks,
        nonce=raw[nonce_at : nonce_at + NONCE_LENGTH],
        opaque_length=opaque_length,
        opaque=opaque_data.decode(raw[opaque_at:signature_at]),
        signature=raw[signature_at:],
    )
    return SpdmReport(raw, _request(raw), response)


def check(report: SpdmReport) -> None:
    """The header values this verifier accepts (as trustee and NVIDIA's attestation SDK check them): SPDMVersion
    0x11 in request and response, codes 0xE0 / 0x60, a request asking for a signature (Param1 bit 0) over all
    measurements (Param2 0xFF) from slot 0..7, and at least one block. Raises ParseError
    GPU_SPDM_VERSION_UNSUPPORTED, GPU_SPDM_CODE_INVALID, GPU_REQUEST_INVALID or GPU_MEASUREMENT_BLOCKS_NONE."""
    request, response = report.request, report.response
    for what, version in (("request", request.version), ("response", response.version)):
        if version != SPDM_VERSION:
            raise _fail("GPU_SPDM_VERSION_UNSUPPORTED", f"{what} SPDMVersion is not 1.1", "0x11", f"{version:#04x}")
    for what, code, want in (("request", request.code, GET_MEASUREMENTS), ("response", response.code, MEASUREMENTS)):
        if code != want:
            raise _fail("GPU_SPDM_CODE_INVALID", f"{what} RequestResponseCode", f"{want:#04x}", f"{code:#04x}")
    if not request.param1 & SIGNATURE_REQUESTED or request.param2 != ALL_MEASUREMENTS or request.slot_id > MAX_SLOT:
        raise _fail(
            "GPU_REQUEST_INVALID",
            "the request must ask for a signed report of all measurements",
            "Param1 bit 0 set, Param2 0xff, slot 0..7",
            f"Param1 {request.param1:#04x}, Param2 {request.param2:#04x}, slot {request.slot_id}",
        )
    if response.number_of_blocks == 0:
        raise _fail("GPU_MEASUREMENT_BLOCKS_NONE", "the response carries no measurement block", ">= 1", "0")


def parse(data: bytes) -> SpdmReport:
    """`decode` then `check`: the report, or ParseError with the first problem's code (theirs)."""
    report = decode(data)
    check(report)
    return report


def encode(report: SpdmReport) -> bytes:
    """The report's bytes rebuilt from its fields (round trip: `encode(decode(b)) == b`). Raises struct.error or
    OverflowError for fields out of their ranges (a hand-built report)."""
    request, response = report.request, report.response
    head = bytes([request.version, request.code, request.param1, request.param2]) + request.nonce
    head += bytes([request.slot_id, response.version, response.code, response.param1, response.param2])
    record = b"".join(
        struct.pack("<BBHBH", b.index, b.specification, DMTF_HEADER + len(b.value), b.value_type, len(b.value))
        + b.value
        for b in response.blocks
    )
    opaque = opaque_data.encode(response.opaque)
    return (
        head
        + bytes([response.number_of_blocks])
        + len(record).to_bytes(3, "little")
        + record
        + response.nonce
        + struct.pack("<H", len(opaque))
        + opaque
        + response.signature
    )
