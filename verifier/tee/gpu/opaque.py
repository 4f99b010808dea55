"""The opaque data of an NVIDIA MEASUREMENTS response: a list of TLVs (type u16 LE, size u16 LE, value), NVIDIA's
own format inside the SPDM OpaqueData field (DSP0274 1.1 leaves its content to the vendor).

Types as NVIDIA's verifiers define them (nv-local-gpu-verifier spdm_msrt_resp_msg.py `OpaqueData.OPAQUE_DATA_TYPES`,
trustee deps/verifier/src/nvidia/spdm_response.rs `OpaqueDataType`). Strict, like trustee: an unknown type
(255 INVALID included), a type that appears twice, a TLV running past the end, a value of the wrong shape for its
type, and a report without DRIVER_VERSION or VBIOS_VERSION are each a ParseError with its own code.

Pure parsing: no crypto, no I/O."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from ...errors import ParseError

TLV_HEADER = 4  # type u16 LE, size u16 LE

# type -> (name, claim name) for every type NVIDIA defines (255 INVALID is not one: it is refused as unknown).
TYPES: Mapping[int, tuple[str, str]] = {
    1: ("CERT_ISSUER_NAME", "cert_issuer_name"),
    2: ("CERT_AUTHORITY_KEY_IDENTIFIER", "cert_authority_key_identifier"),
    3: ("DRIVER_VERSION", "driver_version"),
    4: ("GPU_INFO", "gpu_info"),
    5: ("SKU", "sku"),
    6: ("VBIOS_VERSION", "vbios_version"),
    7: ("MANUFACTURER_ID", "manufacturer_id"),
    8: ("TAMPER_DETECTION", "tamper_detection"),
    9: ("SMC", "smc"),
    10: ("VPR", "vpr"),
    11: ("NVDEC0_STATUS", "nvdec0_status"),
    12: ("MSRSCNT", "measurement_counts"),
    13: ("CPRINFO", "cpr_info"),
    14: ("BOARD_ID", "board_id"),
    15: ("CHIP_SKU", "chip_sku"),
    16: ("CHIP_SKU_MOD", "chip_sku_mod"),
    17: ("PROJECT", "project"),
    18: ("PROJECT_SKU", "project_sku"),
    19: ("PROJECT_SKU_MOD", "project_sku_mod"),
    20: ("FWID", "fwid"),
    21: ("PROTECTED_PCIE_STATUS", "protected_pcie_status"),
    22: ("SWITCH_PDI", "switch_pdi"),
    23: ("FLOORSWEPT_PORTS", "floorswept_ports"),
    24: ("POSITION_ID", "position_id"),
    25: ("LOCK_SWITCH_STATUS", "lock_switch_status"),
    32: ("GPU_LINK_CONN", "gpu_link_conn"),
    33: ("SYS_ENABLE_STATUS", "sys_enable_status"),
    34: ("OPAQUE_DATA_VERSION", "opaque_data_version"),
    35: ("CHIP_INFO", "chip_info"),
    36: ("FEATURE_FLAG", "feature_flag"),
}
DRIVER_VERSION, VBIOS_VERSION, NVDEC0_STATUS, MSRSCNT, FWID = 3, 6, 11, 12, 20
OPAQUE_DATA_VERSION, FEATURE_FLAG, SWITCH_PDI = 34, 36, 22
REQUIRED = (DRIVER_VERSION, VBIOS_VERSION)  # trustee requires both; the RIMs are chosen by them
ASCII_TYPES = frozenset({DRIVER_VERSION, 15, 16, 17, 18, 19, 35})  # ASCII, NUL-terminated or NUL-padded
INTEGER_TYPES = frozenset({OPAQUE_DATA_VERSION, FEATURE_FLAG})  # little-endian integers of 1..8 bytes
FIXED_SIZES: Mapping[int, int] = {VBIOS_VERSION: 8, NVDEC0_STATUS: 1, FWID: 48}
MULTIPLE_OF: Mapping[int, int] = {MSRSCNT: 4, SWITCH_PDI: 8}  # one u32 per measurement, 8 bytes per NVSwitch
VBIOS_BYTES = 8
MAX_INTEGER_BYTES = 8


@dataclass(frozen=True)
class OpaqueField:
    """One TLV: its type and its value bytes (in the order of the report)."""

    type: int
    value: bytes

    @property
    def name(self) -> str:
        """NVIDIA's name of the type (e.g. "DRIVER_VERSION"). Never raises for a decoded field."""
        return TYPES[self.type][0]


@dataclass(frozen=True)
class OpaqueData:
    """The decoded TLVs, in report order, each type at most once."""

    fields: tuple[OpaqueField, ...]

    def get(self, kind: int) -> bytes | None:
        """The value of type `kind`, None when the report has none. Never raises."""
        for entry in self.fields:
            if entry.type == kind:
                return entry.value
        return None

    @property
    def driver_version(self) -> str:
        """DRIVER_VERSION as text (e.g. "550.90.07"). Never raises for decoded opaque data (it is required)."""
        return ascii_text(self.get(DRIVER_VERSION) or b"")

    @property
    def vbios_version(self) -> str:
        """VBIOS_VERSION in NVIDIA's notation (`format_vbios`). Never raises for decoded opaque data."""
        return format_vbios(self.get(VBIOS_VERSION) or bytes(VBIOS_BYTES))

    @property
    def fwid(self) -> bytes | None:
        """The FWID field (48 bytes), None when the report has none (535/545-era drivers). Never raises."""
        return self.get(FWID)


def format_vbios(raw: bytes) -> str:
    """The 8 VBIOS_VERSION bytes b0..b7 as NVIDIA prints them, b3.b2.b1.b0.b4 in lowercase hex (nv-local-gpu-verifier
    utils `format_vbios_version`): 009f009601000000 -> "96.00.9f.00.01". Raises ValueError for other than 8 bytes."""
    if len(raw) != VBIOS_BYTES:
        raise ValueError("VBIOS_VERSION is 8 bytes")
    return ".".join(f"{raw[i]:02x}" for i in (3, 2, 1, 0, 4))


def ascii_text(value: bytes) -> str:
    """The text of an ASCII field before its first NUL (a field `decode` accepted is printable ASCII there). Never
    raises."""
    return value.split(b"\0", 1)[0].decode("ascii", "replace")


def _fail(code: str, message: str, expected: str = "", actual: str = "") -> ParseError:
    return ParseError(code, message, expected=expected, actual=actual)


def _check_value(kind: int, value: bytes) -> None:
    """The shape rules of the types that have one; raises ParseError GPU_OPAQUE_FIELD_INVALID."""
    name = TYPES[kind][0]
    if kind in FIXED_SIZES and len(value) != FIXED_SIZES[kind]:
        raise _fail("GPU_OPAQUE_FIELD_INVALID", f"{name} has the wrong size", str(FIXED_SIZES[kind]), str(len(value)))
    if kind in MULTIPLE_OF and len(value) % MULTIPLE_OF[kind]:
        raise _fail(
            "GPU_OPAQUE_FIELD_INVALID", f"{name} is not whole entries", f"n * {MULTIPLE_OF[kind]}", str(len(value))
        )
    if kind in INTEGER_TYPES and not 1 <= len(value) <= MAX_INTEGER_BYTES:
        raise _fail("GPU_OPAQUE_FIELD_INVALID", f"{name} is not an integer", "1..8 bytes", str(len(value)))
    if kind in ASCII_TYPES:
        text, _, padding = value.partition(b"\0")
        if padding.strip(b"\0") or not all(0x20 <= c < 0x7F for c in text):
            raise _fail("GPU_OPAQUE_FIELD_INVALID", f"{name} is not NUL-padded ASCII", actual=value.hex()[:64])
        if kind == DRIVER_VERSION and not text:
            raise _fail("GPU_OPAQUE_FIELD_INVALID", "DRIVER_VERSION is empty", "a version", value.hex()[:64])


def decode(data: bytes) -> OpaqueData:
    """Decode the opaque data of a MEASUREMENTS response (module docstring). Raises ParseError: GPU_OPAQUE_EMPTY,
    GPU_OPAQUE_MALFORMED (a TLV header or value past the end), GPU_OPAQUE_TYPE_UNKNOWN, GPU_OPAQUE_TYPE_DUPLICATE,
    GPU_OPAQUE_FIELD_INVALID, GPU_OPAQUE_FIELD_MISSING (no DRIVER_VERSION or VBIOS_VERSION)."""
    if not data:
        raise _fail("GPU_OPAQUE_EMPTY", "the response carries no opaque data", "DRIVER_VERSION, VBIOS_VERSION, ...")
    fields: list[OpaqueField] = []
    seen: set[int] = set()
    offset = 0
    while offset < len(data):
        if len(data) - offset < TLV_HEADER:
            raise _fail("GPU_OPAQUE_MALFORMED", "a TLV header runs past the opaque data", "4 bytes", f"offset {offset}")
        kind, size = struct.unpack_from("<HH", data, offset)
        start = offset + TLV_HEADER
        if size > len(data) - start:
            raise _fail(
                "GPU_OPAQUE_MALFORMED", "a TLV value runs past the opaque data", f"<= {len(data) - start}", str(size)
            )
        if kind not in TYPES:
            raise _fail("GPU_OPAQUE_TYPE_UNKNOWN", "unknown opaque data type", "an NVIDIA type", str(kind))
        if kind in seen:
            raise _fail(
                "GPU_OPAQUE_TYPE_DUPLICATE", f"opaque data type {TYPES[kind][0]} appears twice", actual=str(kind)
            )
        value = data[start : start + size]
        _check_value(kind, value)
        seen.add(kind)
        fields.append(OpaqueField(kind, value))
        offset = start + size
    missing = [TYPES[kind][0] for kind in REQUIRED if kind not in seen]
    if missing:
        raise _fail("GPU_OPAQUE_FIELD_MISSING", "the opaque data lacks a required field", ", ".join(missing))
    return OpaqueData(tuple(fields))


def encode(opaque: OpaqueData) -> bytes:
    """The TLV bytes of `opaque` (the inverse of `decode`). Raises struct.error for a value over 65535 bytes."""
    return b"".join(struct.pack("<HH", entry.type, len(entry.value)) + entry.value for entry in opaque.fields)
