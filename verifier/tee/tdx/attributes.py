"""TD_ATTRIBUTES and XFAM of a TD report (Intel TDX Module ABI specification, "TD_ATTRIBUTES" and "XFAM"
definitions; bit names as in Linux arch/x86/include/asm/shared/tdx.h and dcap-qvl `TDAttributes`).

TD_ATTRIBUTES is a little-endian u64 in three groups: TUD (bits 7:0, "TD under debug": any set bit means the TD
is not trustworthy), SEC (bits 31:8, security-relevant) and OTHER (bits 63:32). Unknown bits are not rejected
(newer modules define more); they are kept in `raw` and the group values. XFAM uses the XCR0 / IA32_XSS layout."""

from __future__ import annotations

TD_ATTRIBUTE_BITS = {
    0: "debug",  # TUD: the host VMM can read and write TD state
    4: "hgs_plus_prof",  # TUD (TDX 2.0)
    5: "perf_prof",  # TUD (TDX 2.0)
    6: "pmt_prof",  # TUD (TDX 2.0)
    16: "icssd",  # SEC: I/O compatible secure storage devices
    27: "lass",  # SEC: linear address space separation
    28: "sept_ve_disable",  # SEC: no #VE on EPT violations of pending private pages
    29: "migratable",  # SEC: TDX 1.5 live migration
    30: "pks",  # SEC: protection keys for supervisor pages
    31: "kl",  # SEC: key locker
    62: "tpa",  # OTHER (TDX 2.0)
    63: "perfmon",  # OTHER: the TD may use performance monitoring
}
XFAM_BITS = {
    0: "x87",
    1: "sse",
    2: "avx",
    3: "mpx_bndregs",
    4: "mpx_bndcsr",
    5: "avx512_opmask",
    6: "avx512_zmm_hi256",
    7: "avx512_hi16_zmm",
    8: "pt",
    9: "pkru",
    10: "pasid",
    11: "cet_u",
    12: "cet_s",
    13: "hdc",
    14: "uintr",
    15: "lbr",
    16: "hwp",
    17: "amx_tilecfg",
    18: "amx_tiledata",
}
DEBUG_BIT, SEPT_VE_DISABLE_BIT = 0, 28


def _u64(raw: bytes, what: str) -> int:
    if len(raw) != 8:
        raise ValueError(f"{what} is 8 bytes, got {len(raw)}")
    return int.from_bytes(raw, "little")


def _decode(value: int, names: dict[int, str]) -> dict[str, bool | int]:
    out: dict[str, bool | int] = {name: bool(value >> bit & 1) for bit, name in names.items()}
    known = sum(1 << bit for bit in names)
    out["unknown_bits"] = value & ~known
    out["raw"] = value
    return out


def decode_td_attributes(raw: bytes) -> dict[str, bool | int]:
    """Named bits, the TUD/SEC/OTHER group values, `unknown_bits` and `raw` (the u64)."""
    value = _u64(raw, "TD_ATTRIBUTES")
    out = _decode(value, TD_ATTRIBUTE_BITS)
    out.update(tud=value & 0xFF, sec=value >> 8 & 0xFF_FFFF, other=value >> 32)
    return out


def is_debug(raw: bytes) -> bool:
    """TD_ATTRIBUTES.DEBUG (bit 0). dcap-qvl rejects such quotes ("Debug mode is enabled")."""
    return bool(_u64(raw, "TD_ATTRIBUTES") >> DEBUG_BIT & 1)


def td_under_debug(raw: bytes) -> int:
    """TD_ATTRIBUTES.TUD (bits 7:0, "TD under debug"): DEBUG is bit 0 and the others are reserved for debug
    features, so any set bit makes the TD untrustworthy (as dcap-qvl treats it). Raises ValueError when `raw` is not
    8 bytes (`parse_quote` never yields such a report)."""
    return _u64(raw, "TD_ATTRIBUTES") & 0xFF


def sept_ve_disable(raw: bytes) -> bool:
    """TD_ATTRIBUTES.SEPT_VE_DISABLE (bit 28)."""
    return bool(_u64(raw, "TD_ATTRIBUTES") >> SEPT_VE_DISABLE_BIT & 1)


def decode_xfam(raw: bytes) -> dict[str, bool | int]:
    """XFAM: the extended features (XCR0 and IA32_XSS bits) the TD may use, `unknown_bits` and `raw`."""
    return _decode(_u64(raw, "XFAM"), XFAM_BITS)
