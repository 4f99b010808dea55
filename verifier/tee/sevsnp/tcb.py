"""Products and TCB_VERSION layouts (SEV-SNP ABI spec, "TCB_VERSION Structure"; Turin adds FMC and moves fields).

Milan and Genoa: byte 0 BOOTLOADER, 1 TEE, 2..5 reserved, 6 SNP, 7 MICROCODE.
Turin:           byte 0 FMC, 1 BOOTLOADER, 2 TEE, 3 SNP, 4..6 reserved, 7 MICROCODE.
Bytes 4 and 5 are reserved in every layout. Reserved bytes must be zero: a non-zero one is ParseError
SNP_RESERVED_NONZERO naming the report offset (the parser checks them as soon as it knows the product)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from verifier.errors import ParseError


class Product(StrEnum):
    MILAN = "Milan"
    GENOA = "Genoa"
    TURIN = "Turin"


@dataclass(frozen=True)
class TcbVersion:
    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None  # Turin only
    raw: bytes

    def components(self) -> dict[str, int]:
        """The SVNs by name (pub. 56860 "TCB_VERSION Structure"), `fmc` first on Turin only. Never raises."""
        parts = {"bootloader": self.bootloader, "tee": self.tee, "snp": self.snp, "microcode": self.microcode}
        if self.fmc is not None:
            parts = {"fmc": self.fmc, **parts}
        return parts

    def to_json(self) -> dict[str, object]:
        """`components()` plus the 8 raw bytes as hex. Never raises."""
        return {**self.components(), "raw": self.raw.hex()}


_LAYOUT = {
    Product.MILAN: ({"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7}, (2, 3, 4, 5)),
    Product.GENOA: ({"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7}, (2, 3, 4, 5)),
    Product.TURIN: ({"fmc": 0, "bootloader": 1, "tee": 2, "snp": 3, "microcode": 7}, (4, 5, 6)),
}
RESERVED_IN_EVERY_LAYOUT = tuple(sorted(set.intersection(*(set(r) for _, r in _LAYOUT.values()))))  # (4, 5)

# Offsets of the TCB_VERSION fields in ATTESTATION_REPORT (ABI spec pub. 56860), by spec name.
TCB_FIELD_OFFSETS = {"CURRENT_TCB": 0x38, "REPORTED_TCB": 0x180, "COMMITTED_TCB": 0x1E0, "LAUNCH_TCB": 0x1F0}


def reserved_bytes(product: Product | None) -> tuple[int, ...]:
    """Indexes of the reserved bytes of a TCB_VERSION for `product`; for an unknown product, those reserved in
    every layout."""
    return RESERVED_IN_EVERY_LAYOUT if product is None else _LAYOUT[product][1]


def check_reserved(raw: bytes, product: Product | None, field: str) -> None:
    """Raise ParseError SNP_RESERVED_NONZERO, naming the byte and its report offset (when `field` is one of
    TCB_FIELD_OFFSETS), if a reserved byte of the TCB_VERSION `raw` is not zero."""
    for index in reserved_bytes(product):
        if raw[index]:
            base = TCB_FIELD_OFFSETS.get(field.upper())
            where = f"byte {index}" + ("" if base is None else f" (offset 0x{base + index:03X})")
            layout = f"the {product} layout" if product is not None else "every layout"
            raise ParseError(
                "SNP_RESERVED_NONZERO",
                f"{field} {where} is reserved in {layout} and not zero",
                expected=f"00 at {field} {where}",
                actual=f"{raw[index]:02x} ({field} {raw.hex()})",
            )


def decode_tcb(raw: bytes, product: Product, *, field: str = "TCB") -> TcbVersion:
    """Decode an 8-byte TCB_VERSION for `product`. Raises ParseError SNP_TCB_INVALID (not 8 bytes) or
    SNP_RESERVED_NONZERO (a byte reserved in the product's layout is not zero)."""
    if len(raw) != 8:
        raise ParseError("SNP_TCB_INVALID", f"{field} must be 8 bytes", expected="8", actual=str(len(raw)))
    check_reserved(raw, product, field)
    positions, _ = _LAYOUT[product]
    return TcbVersion(
        bootloader=raw[positions["bootloader"]],
        tee=raw[positions["tee"]],
        snp=raw[positions["snp"]],
        microcode=raw[positions["microcode"]],
        fmc=raw[positions["fmc"]] if "fmc" in positions else None,
        raw=raw,
    )


def encode_tcb(product: Product, *, bootloader: int, tee: int, snp: int, microcode: int, fmc: int = 0) -> bytes:
    """The 8-byte TCB_VERSION of these SVNs in `product`'s layout (pub. 56860 "TCB_VERSION Structure"), reserved
    bytes zero; `fmc` is used on Turin only. Raises ValueError (no error code) for an SVN outside 0..255."""
    out = bytearray(8)
    positions, _ = _LAYOUT[product]
    values = {"bootloader": bootloader, "tee": tee, "snp": snp, "microcode": microcode, "fmc": fmc}
    for name, index in positions.items():
        out[index] = values[name]
    return bytes(out)


def product_from_cpuid(family: int | None, model: int | None) -> Product | None:
    """Product from CPUID_FAM_ID / CPUID_MOD_ID (v3+ reports): family 0x19 models 0x0X Milan, 0x1X and 0xAX
    Genoa (Genoa, Bergamo, Siena share the Genoa keys); family 0x1A models 0x0X..0x1X Turin."""
    if family is None or model is None:
        return None
    if family == 0x19 and model >> 4 == 0x0:
        return Product.MILAN
    if family == 0x19 and model >> 4 in (0x1, 0xA):
        return Product.GENOA
    if family == 0x1A and model >> 4 in (0x0, 0x1):
        return Product.TURIN
    return None


def product_from_name(name: str) -> Product | None:
    """Product from a VCEK productName ("Milan-B0", "Genoa", "Turin", "Milan" in VLEKs)."""
    base = name.split("-", 1)[0].strip().lower()
    return next((p for p in Product if p.value.lower() == base), None)
