"""What each built-in TEE's evidence looks like from its first bytes: the detectors the registry gives each
scheme (`verifier.appraisal.detect` asks them). No imports: tee/<kind>/ parsers stay the authority on the format."""

from __future__ import annotations

SNP_REPORT_BYTES = 0x4A0  # AMD SEV-SNP ABI, ATTESTATION_REPORT
SPDM_REQUEST_BYTES = 37  # NVIDIA: the GET_MEASUREMENTS request, then the MEASUREMENTS response


def is_cose_sign1(evidence: bytes) -> bool:
    """An untagged CBOR array of 4 (0x84) or CBOR tag 18 (0xd2): COSE_Sign1 (RFC 9052 section 2), the AWS Nitro
    attestation document. Never raises."""
    return bool(evidence) and evidence[0] in (0x84, 0xD2)


def is_tdx_quote(evidence: bytes) -> bool:
    """An Intel DCAP quote header (Quote Format): version 4 or 5 (u16 LE) and TEE type 0x81 (TDX). Never raises."""
    return len(evidence) >= 48 and evidence[0] in (4, 5) and evidence[1] == 0 and evidence[4:8] == b"\x81\0\0\0"


def is_snp_report(evidence: bytes) -> bool:
    """At least 0x4A0 bytes with VERSION 2..5: an SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI). Never raises."""
    return len(evidence) >= SNP_REPORT_BYTES and 2 <= int.from_bytes(evidence[0:4], "little") <= 5


def is_gpu_spdm_report(evidence: bytes) -> bool:
    """An SPDM 1.x GET_MEASUREMENTS request (code 0xE0) of 37 bytes followed by a MEASUREMENTS response (0x60): an
    NVIDIA GPU attestation report (DMTF DSP0274; NVML's layout). The version is not held to 1.1 here (the parser
    does that). Never raises."""
    return (
        len(evidence) > SPDM_REQUEST_BYTES + 1
        and evidence[0] >> 4 == 1
        and evidence[1] == 0xE0
        and evidence[SPDM_REQUEST_BYTES] >> 4 == 1
        and evidence[SPDM_REQUEST_BYTES + 1] == 0x60
    )
