"""Reference-value kinds `<tee>.<claim>`: the byte length of each kind's values and how a value matches evidence.

Three ways to match (`Match`), declared per kind:
- "equal": the claim's bytes equal the value (measurements, digests, IDs). Several values of one kind in one
  workload version are alternatives: any one equal value matches.
- "at_least": the value is a big-endian unsigned integer and the claim (the same width, big-endian hex) must be
  >= it (`snp.min_guest_svn`: GUEST_SVN of the ATTESTATION_REPORT, a 32-bit integer; 4 bytes).
- "masked": the value is an 8-byte MASK followed by an 8-byte VALUE, both big-endian; the 64-bit claim matches
  when (claim & MASK) == VALUE, i.e. the bits set in MASK are pinned: set where VALUE has them, clear elsewhere
  (`snp.platform_info`: PLATFORM_INFO; AMD SEV-SNP ABI spec pub. 56860, ATTESTATION_REPORT offset 0x40).
For the constraint kinds ("at_least", "masked") several values of one kind are all required (all-of): a member
is a constraint, not an alternative identity. Read as alternatives, two minimums would mean the smaller one, so
adding a higher minimum beside an old one would tighten nothing; read as all-of it takes effect at once, and
separate members may pin separate PLATFORM_INFO bits. `satisfied` is the one place that rule lives.

`normalize_value` validates an admin's value (CLI `refs add`, gRPC, manifests) by its kind; `holds`, `satisfied`,
`expected_text` and `actual_text` are what appraisal (appraisal/references.py) compares and reports with."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import RequestError

Match = Literal["equal", "at_least", "masked"]
MATCHES: tuple[Match, ...] = ("equal", "at_least", "masked")


@dataclass(frozen=True)
class KindSpec:
    """One kind: its values' byte length, how they match, and the claim name shown in findings."""

    kind: str
    length: int
    match: Match = "equal"
    claim: str = ""

    @property
    def claim_name(self) -> str:
        return self.claim or self.kind.partition(".")[2]


_KINDS: dict[str, KindSpec] = {}
_HEX_DIGITS = frozenset("0123456789abcdef")


def _equal(kind: str, length: int) -> None:
    _KINDS[kind] = KindSpec(kind, length)


# Nitro PCRs are SHA-384 (the document's digest is always "SHA384"): 48 bytes. Index range per the AWS CDDL.
for _i in range(32):
    _equal(f"nitro.pcr{_i}", 48)
# AMD SEV-SNP ABI spec, ATTESTATION_REPORT field sizes.
for _name, _length in (
    ("measurement", 48),
    ("host_data", 32),
    ("id_key_digest", 48),
    ("author_key_digest", 48),
    ("family_id", 16),
    ("image_id", 16),
):
    _equal(f"snp.{_name}", _length)
_KINDS["snp.min_guest_svn"] = KindSpec("snp.min_guest_svn", 4, "at_least", "guest_svn")
_KINDS["snp.platform_info"] = KindSpec("snp.platform_info", 16, "masked", "platform_info")
# Intel TDX TD report fields (SHA-384 measurement registers). MRSERVICETD exists in TD 1.5 reports only (v5 quote
# body type 3): the measurement of the service TDs (e.g. a vTPM or migration TD) bound to this TD.
for _name in (
    "mr_td",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "mr_seam",
    "mr_servicetd",
):
    _equal(f"tdx.{_name}", 48)
# NVIDIA GPU: the FWID of the GSP firmware (SHA-384; the report's opaque FWID = the FMC LF leaf's). The firmware is
# otherwise appraised against NVIDIA's RIMs, so no gpu kind is required by default (not in MEASUREMENT_KINDS).
_equal("gpu.fwid", 48)

# PLATFORM_INFO bit names (SEV-SNP ABI spec, Table "PLATFORM_INFO Field"; as verifier/tee/sevsnp/policy.py decodes).
PLATFORM_INFO_BITS: dict[int, str] = {
    0: "SMT_EN",
    1: "TSME_EN",
    2: "ECC_EN",
    3: "RAPL_DIS",
    4: "CIPHERTEXT_HIDING_EN",
    5: "ALIAS_CHECK_COMPLETE",
    6: "IOMMU_WRITE_SAFE",
    7: "TIO_EN",
}
_BIT_NAMES = {"snp.platform_info": PLATFORM_INFO_BITS}


# The measurement kinds that identify a workload's image, per TEE: the default policy requires them of the evidence
# and every workload version must name them, or a version would match other images (ARCHITECTURE.md): Nitro PCR0-2
# (image, kernel + boot ramfs, application), SNP MEASUREMENT, TDX MRTD. Declared once, read by appraisal/policy_model
# and workloads/manifest.
MEASUREMENT_KINDS: dict[str, tuple[str, ...]] = {
    "nitro": ("nitro.pcr0", "nitro.pcr1", "nitro.pcr2"),
    "snp": ("snp.measurement",),
    "tdx": ("tdx.mr_td",),
}


def known_tees() -> tuple[str, ...]:
    """The TEEs that have reference-value kinds (the `<tee>` prefixes of the kinds table), sorted: the one list of
    TEE names for workloads, manifests and the broker; `tests/unit/reference_values/test_tee_names.py` holds it equal
    to the registry's schemes."""
    return tuple(sorted({kind.partition(".")[0] for kind in _KINDS}))


def known_kinds() -> list[str]:
    return sorted(_KINDS)


@functools.cache
def known_kind_set() -> frozenset[str]:
    """Every kind the verifier knows, as a set (kept until `register_kind` adds one). Never raises."""
    return frozenset(_KINDS)


def owned_by(tee: str, kind: str) -> bool:
    """Whether `kind` is a claim of `tee`: named "<tee>.<claim>" (the one rule; `TeeScheme.owns_kind` is it). Never
    raises."""
    return kind.startswith(f"{tee}.")


@functools.cache
def kinds_of(tee: str) -> tuple[str, ...]:
    """The kinds `owned_by` `tee`, sorted (`known_kinds` filtered by `TeeScheme.owns_kind`), looked up once per TEE
    (until `register_kind` adds one): every appraisal asks. Never raises (no kinds: empty)."""
    return tuple(kind for kind in sorted(_KINDS) if owned_by(tee, kind))


def spec(kind: str) -> KindSpec:
    """The kind's spec; RequestError REFERENCE_KIND_UNKNOWN for a kind the verifier does not know."""
    found = _KINDS.get(kind)
    if found is None:
        raise RequestError("REFERENCE_KIND_UNKNOWN", f"unknown reference-value kind {kind!r}")
    return found


def register_kind(kind: str, length: int, match: Match = "equal") -> None:
    """Let a TEE package add its kinds. Raises ValueError for a length the match type cannot have."""
    if match not in MATCHES or length <= 0 or (match == "masked" and length % 2):
        raise ValueError(f"bad kind spec {kind}: {length} bytes, {match}")
    _KINDS[kind] = KindSpec(kind, length, match)
    known_kind_set.cache_clear()
    kinds_of.cache_clear()


def normalize_value(kind: str, value_hex: str) -> bytes:
    """Validate a kind and a hex value (an optional 0x prefix, any case); return the value's bytes.

    Raises `RequestError`: REFERENCE_KIND_UNKNOWN, REFERENCE_VALUE_NOT_HEX, REFERENCE_VALUE_LENGTH, and
    REFERENCE_VALUE_INVALID for a "masked" value whose MASK is zero (it would pin nothing) or whose VALUE has a
    bit outside MASK (no evidence could ever match)."""
    kind_spec = spec(kind)
    text = value_hex.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise RequestError("REFERENCE_VALUE_NOT_HEX", f"value for {kind} is not hex{_format_hint(kind_spec)}") from None
    if len(raw) != kind_spec.length:
        raise RequestError(
            "REFERENCE_VALUE_LENGTH",
            f"{kind} needs {kind_spec.length} bytes, got {len(raw)}{_format_hint(kind_spec)}",
        )
    if kind_spec.match == "masked":
        mask, value = _split(raw)
        if mask == 0:
            raise RequestError("REFERENCE_VALUE_INVALID", f"{kind}: the mask is zero, so the value pins no bit")
        if value & ~mask:
            raise RequestError(
                "REFERENCE_VALUE_INVALID",
                f"{kind}: the value sets bits outside the mask (0x{value & ~mask:x}); no evidence could match it",
            )
    return raw


def _format_hint(kind_spec: KindSpec) -> str:
    width = kind_spec.length * 2
    if kind_spec.match == "at_least":
        return (
            f" ({kind_spec.kind} is a {kind_spec.length}-byte big-endian minimum: {width} hex digits, "
            f"e.g. {3:0{width}x} for >= 3)"
        )
    if kind_spec.match == "masked":
        half = kind_spec.length // 2  # bytes of the mask, and of the value; `half * 2` hex digits each
        return (
            f" ({kind_spec.kind} is a {half}-byte mask then a {half}-byte value, big-endian: "
            f"{width} hex digits, e.g. {1:0{half * 2}x}{0:0{half * 2}x} for bit 0 clear)"
        )
    return ""


def _split(raw: bytes) -> tuple[int, int]:
    half = len(raw) // 2
    return int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")


def _actual_int(actual_hex: str) -> int | None:
    text = actual_hex.strip().lower()
    text = text[2:] if text.startswith("0x") else text
    if not text or not set(text) <= _HEX_DIGITS:  # int() alone would take "-1", "+1" and "1_0"
        return None
    return int(text, 16)


def holds(kind: str, value: bytes, actual_hex: str) -> bool:
    """Whether one reference value of `kind` holds for the claim `actual_hex` (hex; for "at_least" and "masked"
    a big-endian integer). A claim that is not hex never holds. Raises RequestError for an unknown kind."""
    kind_spec = spec(kind)
    if kind_spec.match == "equal":
        return value.hex() == actual_hex.strip().lower()
    actual = _actual_int(actual_hex)
    if actual is None:
        return False
    if kind_spec.match == "at_least":
        return actual >= int.from_bytes(value, "big")
    mask, want = _split(value)
    return actual & mask == want


def satisfied(kind: str, values: Sequence[bytes], actual_hex: str) -> bool:
    """Whether the reference values of one kind (one workload version's members) accept the claim: any one for
    "equal" kinds (alternatives), every one for the constraint kinds (see the module docstring). No values: False."""
    if not values:
        return False
    results = [holds(kind, value, actual_hex) for value in values]
    return any(results) if spec(kind).match == "equal" else all(results)


def expected_text(kind: str, values: Sequence[bytes], actual_hex: str | None = None) -> str:
    """Readable expected side of a finding: the equal values ("a | b", at most 8), "guest_svn >= 3" (the strictest
    minimum), or the PLATFORM_INFO constraints that fail for `actual_hex` (all when it is None)."""
    kind_spec = spec(kind)
    if kind_spec.match == "equal":
        return " | ".join(sorted(value.hex() for value in values)[:8])
    if kind_spec.match == "at_least":
        return f"{kind_spec.claim_name} >= {max(int.from_bytes(value, 'big') for value in values)}"
    failing = [v for v in values if actual_hex is None or not holds(kind, v, actual_hex)] or list(values)
    return " and ".join(_constraint_text(kind_spec, value) for value in sorted(set(failing)))


def actual_text(kind: str, actual_hex: str) -> str:
    """Readable actual side of a finding: the hex for "equal" kinds, the integer for "at_least", and for "masked"
    the 64-bit hex with the names of the bits set (SMT_EN, ...)."""
    kind_spec = spec(kind)
    if kind_spec.match == "equal":
        return actual_hex
    actual = _actual_int(actual_hex)
    if actual is None:
        return actual_hex
    if kind_spec.match == "at_least":
        return str(actual)
    names = [_bit_name(kind, bit) for bit in _set_bits(actual)]
    return f"0x{actual:0{kind_spec.length}x} (set: {', '.join(names) or 'none'})"  # the claim is one half wide


def _constraint_text(kind_spec: KindSpec, value: bytes) -> str:
    mask, want = _split(value)
    bits = [f"{_bit_name(kind_spec.kind, bit)}={want >> bit & 1}" for bit in _set_bits(mask)]
    width = kind_spec.length  # hex digits of one half (length / 2 bytes)
    return f"{kind_spec.claim_name} & 0x{mask:0{width}x} == 0x{want:0{width}x} ({', '.join(bits)})"


def _set_bits(value: int) -> list[int]:
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


def _bit_name(kind: str, bit: int) -> str:
    return _BIT_NAMES.get(kind, {}).get(bit, f"bit{bit}")
