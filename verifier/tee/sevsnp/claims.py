"""Claims of a parsed SEV-SNP ATTESTATION_REPORT (ABI spec pub. 56860): spec field names in snake_case, byte
fields as lowercase hex, integers as integers, 64-bit bit fields as "0x%016x" with a decoded view beside them."""

from __future__ import annotations

from verifier.errors import EvidenceError

from .abi import AttestationReport
from .policy import decode_platform_info, decode_policy
from .tcb import Product, decode_tcb

_HEX_FIELDS = (
    "family_id",
    "image_id",
    "report_data",
    "measurement",
    "host_data",
    "id_key_digest",
    "author_key_digest",
    "report_id",
    "report_id_ma",
    "chip_id",
)
_TCB_FIELDS = ("current_tcb", "reported_tcb", "committed_tcb", "launch_tcb")


def debug(report: AttestationReport) -> bool:
    """GUEST_POLICY.DEBUG (bit 19): the hypervisor may decrypt and change guest memory."""
    return decode_policy(report.policy).debug


def _tcb(raw: bytes, product: Product | None, field: str) -> dict[str, object]:
    """Decoded per product; only the raw hex when the product (so the layout) is unknown or the bytes do not fit
    it (the TCB checks report that; claims stay total)."""
    if product is not None:
        try:
            return decode_tcb(raw, product, field=field.upper()).to_json()
        except EvidenceError:
            pass
    return {"raw": raw.hex()}


def claims(report: AttestationReport, product: Product | None) -> dict[str, object]:
    """The claims of a parsed ATTESTATION_REPORT (pub. 56860), TCB_VERSIONs decoded for `product` (raw hex when it
    is None or the bytes do not fit). Raises ParseError SNP_POLICY_INVALID / SNP_PLATFORM_INFO_INVALID only for a
    hand-built report: `parse_report` already refused those."""
    out: dict[str, object] = {
        "version": report.version,
        "guest_svn": report.guest_svn,
        "policy": f"0x{report.policy:016x}",
        "policy_decoded": decode_policy(report.policy).to_json(),
        "vmpl": report.vmpl,
        "signature_algo": report.signature_algo,
        "platform_info": f"0x{report.platform_info:016x}",
        "platform_info_decoded": decode_platform_info(report.platform_info).to_json(),
        "author_key_en": int(report.author_key_en),
        "mask_chip_key": int(report.mask_chip_key),
        "signing_key": report.signing_key,
        "signing_key_name": report.signing_key_name,
    }
    out.update({name: getattr(report, name).hex() for name in _HEX_FIELDS})
    out.update({name: _tcb(getattr(report, name), product, name) for name in _TCB_FIELDS})
    out["current_build_minor_major"] = [report.current_build, report.current_minor, report.current_major]
    out["committed_build_minor_major"] = [report.committed_build, report.committed_minor, report.committed_major]
    if report.version >= 3:
        out.update(cpuid_fam_id=report.cpuid_fam_id, cpuid_mod_id=report.cpuid_mod_id, cpuid_step=report.cpuid_step)
    if report.version >= 5:
        out["launch_mit_vector"] = f"0x{report.launch_mit_vector or 0:016x}"
        out["current_mit_vector"] = f"0x{report.current_mit_vector or 0:016x}"
    out["product"] = None if product is None else product.value
    out["debug"] = debug(report)
    return out
