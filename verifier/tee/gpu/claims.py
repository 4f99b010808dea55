"""The claims of an NVIDIA GPU report (JSON-able; named as the shared vectors' facts): bytes as lowercase hex,
measurement blocks by index, the opaque fields by name, and what the device chain says (`ueid`, `hwmodel`).

- `nonce`: the verifier's nonce, bytes 4..35 of the request (signed); `response_nonce`: the GPU's own nonce;
- `spdm_version` ("1.1"), `number_of_blocks`, `measurements` ({"<block index>": hex});
- `driver_version` ("550.90.07"), `vbios_version` (lowercase dotted, "96.00.9f.00.01"), `fwid` (hex, absent for
  reports without the field), every other opaque field under its claim name (`opaque.TYPES`): ASCII fields as text
  ("project", "project_sku", "chip_sku", "chip_info", ...), OPAQUE_DATA_VERSION and FEATURE_FLAG as integers,
  MSRSCNT as `measurement_counts` (a list of integers), the rest as hex;
- `architecture` / `gpu_arch` ("hopper" | "blackwell") when GPU_INFO names one (NV PMC_BOOT_42 architecture:
  0x180 GH100, 0x1A0 GB100, 0x1B0 GB20x);
- from the certificate chain as given (verified or not: `VerifiedEvidence.failure` says), as NVIDIA's tools derive
  them (attestation-sdk gpu/evidence_test.cpp): `ueid` = the leaf's serial number in decimal, `hwmodel` = the CN of
  the second certificate, `chip` = the first word of the leaf's CN ("GH100") when it is a GSP certificate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from . import opaque
from .spdm import SpdmReport

ARCHITECTURES = {0x180: "hopper", 0x1A0: "blackwell", 0x1B0: "blackwell"}  # GPU_INFO u32 LE & 0x1F0
ARCHITECTURE_MASK = 0x1F0
GPU_INFO = 4


def architecture(report: SpdmReport) -> str | None:
    """The architecture ("hopper" or "blackwell") of the report's GPU_INFO (module docstring); None when absent or
    unknown. Never raises."""
    info = report.response.opaque.get(GPU_INFO)
    if info is None or len(info) < 4:
        return None
    return ARCHITECTURES.get(int.from_bytes(info[:4], "little") & ARCHITECTURE_MASK)


def common_name(cert: x509.Certificate) -> str | None:
    """The subject's first CN, None when it has none. Never raises for a certificate the shared loader decoded."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def chip(chain: Sequence[x509.Certificate]) -> str | None:
    """The chip a GSP certificate first in `chain` names ("GH100 A01 GSP FMC LF" -> "GH100"), None when the first
    certificate is no GSP certificate. Never raises."""
    name = common_name(chain[0]) if chain else None
    words = name.split(" ") if name else []
    return words[0] if len(words) > 2 and words[2] == "GSP" else None


def _opaque_value(field: opaque.OpaqueField) -> Any:
    if field.type in opaque.ASCII_TYPES:
        return opaque.ascii_text(field.value)
    if field.type in opaque.INTEGER_TYPES:
        return int.from_bytes(field.value, "little")
    if field.type == opaque.MSRSCNT:
        return [int.from_bytes(field.value[i : i + 4], "little") for i in range(0, len(field.value), 4)]
    if field.type == opaque.VBIOS_VERSION:
        return opaque.format_vbios(field.value)
    return field.value.hex()


def claims(report: SpdmReport, chain: Sequence[x509.Certificate] = ()) -> dict[str, Any]:
    """The claims of `report` and of the certificate chain given with it (module docstring). Never raises for a
    report `spdm.decode` returned and certificates the shared loader decoded."""
    response = report.response
    out: dict[str, Any] = {
        "nonce": report.request.nonce.hex(),
        "response_nonce": response.nonce.hex(),
        "spdm_version": f"{response.version >> 4}.{response.version & 0xF}",
        "number_of_blocks": response.number_of_blocks,
        "measurements": {str(index): value.hex() for index, value in report.measurements.items()},
    }
    for field in response.opaque.fields:
        out[opaque.TYPES[field.type][1]] = _opaque_value(field)
    arch = architecture(report)
    if arch is not None:
        out["architecture"] = out["gpu_arch"] = arch
    if chain:
        out["ueid"] = str(chain[0].serial_number)
        if (name := chip(chain)) is not None:
            out["chip"] = name
        if len(chain) > 1:
            out["hwmodel"] = common_name(chain[1])
    return out
