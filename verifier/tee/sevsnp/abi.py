"""ATTESTATION_REPORT of the AMD SEV-SNP Firmware ABI Specification (pub. 56860, Table "ATTESTATION_REPORT
Structure"): a 0x4A0-byte little-endian structure; versions 2, 3, 4 and 5 are understood. Pure parsing.

Offsets follow the spec (and google/go-sev-guest abi/abi.go). Version 3 added CPUID_FAM_ID/MOD_ID/STEP at
0x188..0x18A (zero in v2); version 5 added LAUNCH_MIT_VECTOR (0x1F8) and CURRENT_MIT_VECTOR (0x200).
Every reserved range must be zero and is rejected with its offset, including the reserved bytes of the four
TCB_VERSION fields (per product layout, see `tcb.py`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

from verifier.errors import ParseError
from verifier.tee.sevsnp.tcb import TCB_FIELD_OFFSETS, check_reserved, product_from_cpuid

REPORT_SIZE = 0x4A0
SIGNED_SIZE = 0x2A0  # the signature covers bytes 0x000..0x29F
SIGNATURE_OFFSET = 0x2A0
SIGNATURE_COMPONENT = 72  # R and S, little-endian, zero-extended to 72 bytes
SUPPORTED_VERSIONS = (2, 3, 4, 5)
SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1

SIGNING_KEY_VCEK, SIGNING_KEY_VLEK, SIGNING_KEY_NONE = 0, 1, 7
SIGNING_KEY_NAMES = {SIGNING_KEY_VCEK: "VCEK", SIGNING_KEY_VLEK: "VLEK", SIGNING_KEY_NONE: "none"}


@dataclass(frozen=True)
class AttestationReport:
    """Every field of ATTESTATION_REPORT under its spec name (snake_case). Byte fields keep their raw bytes;
    TCB_VERSION fields stay raw (8 bytes) because their layout depends on the product (see `tcb.py`)."""

    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: bytes
    platform_info: int
    author_key_en: bool
    mask_chip_key: bool
    signing_key: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: bytes
    cpuid_fam_id: int | None  # v3+
    cpuid_mod_id: int | None
    cpuid_step: int | None
    chip_id: bytes
    committed_tcb: bytes
    current_build: int
    current_minor: int
    current_major: int
    committed_build: int
    committed_minor: int
    committed_major: int
    launch_tcb: bytes
    launch_mit_vector: int | None  # v5
    current_mit_vector: int | None
    signature_r: bytes  # 72 bytes, little-endian as in the report
    signature_s: bytes

    @property
    def signing_key_name(self) -> str:
        """The name of SIGNING_KEY: "VCEK", "VLEK" or "none" (ABI spec pub. 56860, Table "ATTESTATION_REPORT
        Structure"). Raises KeyError only for a hand-built report: `parse_report` refuses other values
        (SNP_SIGNING_KEY_UNKNOWN)."""
        return SIGNING_KEY_NAMES[self.signing_key]

    def signed_bytes(self) -> bytes:
        """Bytes 0x000..0x29F, the message the VCEK/VLEK signed."""
        return serialize_report(self)[:SIGNED_SIZE]

    def signature_rs(self) -> tuple[int, int]:
        """R and S as integers (the report stores them little-endian, ABI spec "ECDSA signature format")."""
        return int.from_bytes(self.signature_r, "little"), int.from_bytes(self.signature_s, "little")


# (name, offset, length) of every byte field; integer fields are unpacked separately.
_BYTES = (
    ("family_id", 0x10, 16),
    ("image_id", 0x20, 16),
    ("current_tcb", TCB_FIELD_OFFSETS["CURRENT_TCB"], 8),
    ("report_data", 0x50, 64),
    ("measurement", 0x90, 48),
    ("host_data", 0xC0, 32),
    ("id_key_digest", 0xE0, 48),
    ("author_key_digest", 0x110, 48),
    ("report_id", 0x140, 32),
    ("report_id_ma", 0x160, 32),
    ("reported_tcb", TCB_FIELD_OFFSETS["REPORTED_TCB"], 8),
    ("chip_id", 0x1A0, 64),
    ("committed_tcb", TCB_FIELD_OFFSETS["COMMITTED_TCB"], 8),
    ("launch_tcb", TCB_FIELD_OFFSETS["LAUNCH_TCB"], 8),
    ("signature_r", 0x2A0, 72),
    ("signature_s", 0x2E8, 72),
)
_SIGNER_INFO = 0x48
_SIGNER_INFO_KNOWN = 0b11111  # AUTHOR_KEY_EN (0), MASK_CHIP_KEY (1), SIGNING_KEY (4:2)


def _reserved(version: int) -> list[tuple[int, int]]:
    """Must-be-zero ranges [start, end) for a report version."""
    ranges = [(0x4C, 0x50), (0x1EB, 0x1EC), (0x1EF, 0x1F0), (0x330, REPORT_SIZE)]
    ranges.append((0x18B, 0x1A0) if version >= 3 else (0x188, 0x1A0))
    ranges.append((0x208, 0x2A0) if version >= 5 else (0x1F8, 0x2A0))
    return ranges


def parse_report(data: bytes) -> AttestationReport:
    """Parse exactly one 0x4A0-byte report. Raises ParseError (SNP_* codes) on any violation."""
    if len(data) != REPORT_SIZE:
        code = "SNP_REPORT_TRUNCATED" if len(data) < REPORT_SIZE else "SNP_REPORT_LENGTH"
        raise ParseError(
            code, "an SNP attestation report is exactly 0x4A0 bytes", expected=str(REPORT_SIZE), actual=str(len(data))
        )
    version, guest_svn, policy = struct.unpack_from("<IIQ", data, 0x00)
    if version not in SUPPORTED_VERSIONS:
        raise ParseError(
            "SNP_REPORT_VERSION_UNSUPPORTED",
            "unsupported ATTESTATION_REPORT version",
            expected="2..5",
            actual=str(version),
        )
    for start, end in _reserved(version):
        chunk = data[start:end]
        if any(chunk):
            first = start + next(i for i, b in enumerate(chunk) if b)
            raise ParseError(
                "SNP_RESERVED_NONZERO",
                f"reserved bytes 0x{start:03X}..0x{end - 1:03X} are not zero (first non-zero at 0x{first:03X})",
                expected="00",
                actual=f"0x{first:03X}",
            )
    vmpl, signature_algo = struct.unpack_from("<II", data, 0x30)
    (platform_info,) = struct.unpack_from("<Q", data, 0x40)
    (signer_info,) = struct.unpack_from("<I", data, _SIGNER_INFO)
    if signer_info & ~_SIGNER_INFO_KNOWN:
        raise ParseError(
            "SNP_RESERVED_NONZERO",
            "reserved signer-info bits at 0x048 are set",
            expected=f"mask 0x{_SIGNER_INFO_KNOWN:08x}",
            actual=f"0x{signer_info:08x}",
        )
    signing_key = (signer_info >> 2) & 0b111
    if signing_key not in SIGNING_KEY_NAMES:
        raise ParseError(
            "SNP_SIGNING_KEY_UNKNOWN",
            "SIGNING_KEY is not VCEK (0), VLEK (1) or none (7)",
            expected="0|1|7",
            actual=str(signing_key),
        )
    if signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384:
        raise ParseError(
            "SNP_SIGNATURE_ALGO_UNSUPPORTED",
            "SIGNATURE_ALGO must be 1 (ECDSA P-384 with SHA-384)",
            expected="1",
            actual=str(signature_algo),
        )
    if vmpl > 3:
        raise ParseError("SNP_VMPL_INVALID", "VMPL must be 0..3", expected="0..3", actual=str(vmpl))
    _check_policy(policy)
    raw = {name: bytes(data[off : off + size]) for name, off, size in _BYTES}
    cpuid = (data[0x188], data[0x189], data[0x18A]) if version >= 3 else (None, None, None)
    # TCB_VERSION reserved bytes (ABI spec "TCB_VERSION Structure"): the layout depends on the product, known here
    # from CPUID (v3+); otherwise only the bytes reserved in every layout are checked now, the rest when the
    # product is known (tcb.decode_tcb, same code).
    product = product_from_cpuid(cpuid[0], cpuid[1])
    for field in TCB_FIELD_OFFSETS:
        check_reserved(raw[field.lower()], product, field)
    mit = struct.unpack_from("<QQ", data, 0x1F8) if version >= 5 else (None, None)
    return AttestationReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        vmpl=vmpl,
        signature_algo=signature_algo,
        platform_info=platform_info,
        author_key_en=bool(signer_info & 1),
        mask_chip_key=bool(signer_info & 2),
        signing_key=signing_key,
        cpuid_fam_id=cpuid[0],
        cpuid_mod_id=cpuid[1],
        cpuid_step=cpuid[2],
        current_build=data[0x1E8],
        current_minor=data[0x1E9],
        current_major=data[0x1EA],
        committed_build=data[0x1EC],
        committed_minor=data[0x1ED],
        committed_major=data[0x1EE],
        launch_mit_vector=mit[0],
        current_mit_vector=mit[1],
        **raw,
    )


# GUEST_POLICY (ABI spec, Table "GUEST_POLICY Structure"): bit 17 is reserved and must be one; bits 63:26 MBZ.
POLICY_RESERVED_ONE = 1 << 17
POLICY_KNOWN_BITS = (1 << 26) - 1


def _check_policy(policy: int) -> None:
    if not policy & POLICY_RESERVED_ONE:
        raise ParseError(
            "SNP_POLICY_INVALID",
            "GUEST_POLICY bit 17 is reserved and must be one",
            expected="bit 17 set",
            actual=f"0x{policy:016x}",
        )
    if policy & ~POLICY_KNOWN_BITS:
        raise ParseError(
            "SNP_POLICY_INVALID",
            "GUEST_POLICY bits 63:26 are reserved and must be zero",
            expected=f"mask 0x{POLICY_KNOWN_BITS:016x}",
            actual=f"0x{policy:016x}",
        )


def serialize_report(report: AttestationReport) -> bytes:
    """The exact 0x4A0 bytes of `report` (parse -> serialize round-trips)."""
    out = bytearray(REPORT_SIZE)
    struct.pack_into("<IIQ", out, 0x00, report.version, report.guest_svn, report.policy)
    struct.pack_into("<II", out, 0x30, report.vmpl, report.signature_algo)
    struct.pack_into("<Q", out, 0x40, report.platform_info)
    signer = int(report.author_key_en) | int(report.mask_chip_key) << 1 | report.signing_key << 2
    struct.pack_into("<I", out, _SIGNER_INFO, signer)
    for name, off, size in _BYTES:
        value = getattr(report, name)
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
        out[off : off + size] = value
    if report.version >= 3:
        out[0x188:0x18B] = bytes([report.cpuid_fam_id or 0, report.cpuid_mod_id or 0, report.cpuid_step or 0])
    out[0x1E8:0x1EB] = bytes([report.current_build, report.current_minor, report.current_major])
    out[0x1EC:0x1EF] = bytes([report.committed_build, report.committed_minor, report.committed_major])
    if report.version >= 5:
        struct.pack_into("<QQ", out, 0x1F8, report.launch_mit_vector or 0, report.current_mit_vector or 0)
    return bytes(out)


def field_names() -> list[str]:
    """The names of every `AttestationReport` field, in ATTESTATION_REPORT order (pub. 56860). Never raises."""
    return [f.name for f in fields(AttestationReport)]
