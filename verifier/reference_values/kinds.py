"""Reference-value kinds `<tee>.<claim>` and the byte length each one must have."""

from __future__ import annotations

from ..errors import RequestError

# Nitro PCRs are SHA-384 (the document's digest is always "SHA384"): 48 bytes. Index range per the AWS CDDL.
_KINDS: dict[str, int] = {f"nitro.pcr{i}": 48 for i in range(32)}
# AMD SEV-SNP ABI spec, ATTESTATION_REPORT field sizes.
_KINDS.update({
    "snp.measurement": 48,
    "snp.host_data": 32,
    "snp.id_key_digest": 48,
    "snp.author_key_digest": 48,
    "snp.family_id": 16,
    "snp.image_id": 16,
})
# Intel TDX TD report fields (SHA-384 measurement registers).
_KINDS.update({f"tdx.{name}": 48 for name in (
    "mr_td", "mr_config_id", "mr_owner", "mr_owner_config", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_seam")})


def known_kinds() -> list[str]:
    return sorted(_KINDS)


def register_kind(kind: str, length: int) -> None:
    """Let a TEE package add its kinds (SNP and TDX do so on import)."""
    _KINDS[kind] = length


def normalize_value(kind: str, value_hex: str) -> bytes:
    """Validate a kind and a hex value; return the value's bytes. Raises `RequestError` on bad input."""
    if kind not in _KINDS:
        raise RequestError("REFERENCE_KIND_UNKNOWN", f"unknown reference-value kind {kind!r}")
    text = value_hex.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise RequestError("REFERENCE_VALUE_NOT_HEX", f"value for {kind} is not hex") from None
    if len(raw) != _KINDS[kind]:
        raise RequestError(
            "REFERENCE_VALUE_LENGTH",
            f"{kind} needs {_KINDS[kind]} bytes, got {len(raw)}",
        )
    return raw
