"""Guess the evidence kind from its first bytes (used only when the caller does not say)."""

from __future__ import annotations

SNP_REPORT_BYTES = 0x4A0  # AMD SEV-SNP ABI, ATTESTATION_REPORT


def detect_tee(evidence: bytes) -> str | None:
    """The evidence kind its first bytes show: "nitro" (COSE_Sign1, RFC 9052 section 2), "tdx" (an Intel DCAP
    quote v4/v5 header, TEE type 0x81) or "snp" (at least 0x4A0 bytes, an SEV-SNP ATTESTATION_REPORT with VERSION
    2..5); None when none fits. Never raises."""
    if not evidence:
        return None
    # COSE_Sign1: an untagged CBOR array of 4 (0x84) or CBOR tag 18 (0xd2) -> AWS Nitro attestation document.
    if evidence[0] in (0x84, 0xD2):
        return "nitro"
    # Intel DCAP quote header: version 4/5 (u16 LE), att key type 2, TEE type 0x81 (TDX).
    if len(evidence) >= 48 and evidence[0] in (4, 5) and evidence[1] == 0 and evidence[4:8] == b"\x81\0\0\0":
        return "tdx"
    if len(evidence) >= SNP_REPORT_BYTES and 2 <= int.from_bytes(evidence[0:4], "little") <= 5:
        return "snp"
    return None
