"""GUEST_POLICY and PLATFORM_INFO of the AMD SEV-SNP Firmware ABI Specification (pub. 56860, "GUEST_POLICY
Structure" and the PLATFORM_INFO field of "ATTESTATION_REPORT Structure"). Pure decoding, no policy decisions."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from verifier.errors import ParseError

from .abi import POLICY_KNOWN_BITS, POLICY_RESERVED_ONE

_U64 = (1 << 64) - 1


def _bit(value: int, index: int) -> bool:
    return bool(value >> index & 1)


@dataclass(frozen=True)
class GuestPolicy:
    """GUEST_POLICY: bits 7:0 ABI_MINOR, 15:8 ABI_MAJOR, 16 SMT, 17 reserved (must be one), 18 MIGRATE_MA,
    19 DEBUG, 20 SINGLE_SOCKET, 21 CXL_ALLOW, 22 MEM_AES_256_XTS, 23 RAPL_DIS, 24 CIPHERTEXT_HIDING,
    25 PAGE_SWAP_DISABLE, 63:26 reserved (must be zero)."""

    abi_minor: int
    abi_major: int
    smt: bool
    migrate_ma: bool
    debug: bool
    single_socket: bool
    cxl_allow: bool
    mem_aes_256_xts: bool
    rapl_dis: bool
    ciphertext_hiding: bool
    page_swap_disable: bool

    def to_json(self) -> dict[str, object]:
        """Every decoded GUEST_POLICY field by name (pub. 56860 "GUEST_POLICY Structure"). Never raises."""
        return asdict(self)


def decode_policy(value: int) -> GuestPolicy:
    """Decode GUEST_POLICY; ParseError SNP_POLICY_INVALID when bit 17 is clear or a reserved bit is set."""
    if not 0 <= value <= _U64 or not value & POLICY_RESERVED_ONE or value & ~POLICY_KNOWN_BITS:
        raise ParseError(
            "SNP_POLICY_INVALID",
            "GUEST_POLICY needs bit 17 set and bits 63:26 clear",
            expected=f"bit 17 set, mask 0x{POLICY_KNOWN_BITS:016x}",
            actual=f"0x{value:016x}",
        )
    return GuestPolicy(
        abi_minor=value & 0xFF,
        abi_major=value >> 8 & 0xFF,
        smt=_bit(value, 16),
        migrate_ma=_bit(value, 18),
        debug=_bit(value, 19),
        single_socket=_bit(value, 20),
        cxl_allow=_bit(value, 21),
        mem_aes_256_xts=_bit(value, 22),
        rapl_dis=_bit(value, 23),
        ciphertext_hiding=_bit(value, 24),
        page_swap_disable=_bit(value, 25),
    )


@dataclass(frozen=True)
class PlatformInfo:
    """PLATFORM_INFO: bit 0 SMT_EN, 1 TSME_EN, 2 ECC_EN, 3 RAPL_DIS, 4 CIPHERTEXT_HIDING_EN (DRAM),
    5 ALIAS_CHECK_COMPLETE, 6 IOMMU_WRITE_SAFE (set on Turin), 7 TIO_EN (SEV-TIO); higher bits are reserved
    and kept in `raw` (not rejected: newer firmware defines more bits)."""

    smt_en: bool
    tsme_en: bool
    ecc_en: bool
    rapl_dis: bool
    ciphertext_hiding_en: bool
    alias_check_complete: bool
    iommu_write_safe: bool
    tio_en: bool
    raw: int

    @property
    def unknown_bits(self) -> int:
        """PLATFORM_INFO bits 63:8, which this verifier does not name (kept, not rejected). Never raises."""
        return self.raw & ~0xFF

    def to_json(self) -> dict[str, object]:
        """Every decoded PLATFORM_INFO bit by name, and `raw` as "0x%016x". Never raises."""
        return {**asdict(self), "raw": f"0x{self.raw:016x}"}


def decode_platform_info(value: int) -> PlatformInfo:
    """Decode PLATFORM_INFO (pub. 56860, "ATTESTATION_REPORT Structure"): bits 7:0 by name, all 64 in `raw`.
    Raises ParseError SNP_PLATFORM_INFO_INVALID when `value` is not a 64-bit unsigned integer."""
    if not 0 <= value <= _U64:
        raise ParseError(
            "SNP_PLATFORM_INFO_INVALID", "PLATFORM_INFO is a 64-bit field", expected="0..2^64-1", actual=str(value)
        )
    return PlatformInfo(
        smt_en=_bit(value, 0),
        tsme_en=_bit(value, 1),
        ecc_en=_bit(value, 2),
        rapl_dis=_bit(value, 3),
        ciphertext_hiding_en=_bit(value, 4),
        alias_check_complete=_bit(value, 5),
        iommu_write_safe=_bit(value, 6),
        tio_en=_bit(value, 7),
        raw=value,
    )
