"""Claims of a parsed TDX quote (Intel TDX DCAP Quoting Library API, "Quote Format"; TDX Module ABI for
TD_ATTRIBUTES / XFAM): spec field names in snake_case, byte fields as lowercase hex, integers as integers, with
decoded views of TD_ATTRIBUTES and XFAM beside the raw hex. PCK facts come from the leaf's SGX extension."""

from __future__ import annotations

from .attributes import decode_td_attributes, decode_xfam, is_debug, sept_ve_disable
from .enclave_report import parse_enclave_report
from .pck import PckInfo
from .quote import Quote

_BODY_FIELDS = (
    "tee_tcb_svn",
    "mr_seam",
    "mr_signer_seam",
    "seam_attributes",
    "td_attributes",
    "xfam",
    "mr_td",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "report_data",
)
_TDX15_FIELDS = ("tee_tcb_svn_2", "mr_servicetd")


def claims(quote: Quote, pck: PckInfo | None) -> dict[str, object]:
    """The claims of a parsed quote (Intel TDX DCAP Quoting Library API, "Quote Format"), plus the PCK facts when
    `pck` is given. Raises ParseError TDX_QE_REPORT_INVALID only for a hand-built quote whose QE report is not 384
    bytes (`parse_quote` refuses those)."""
    header, body = quote.header, quote.body
    out: dict[str, object] = {
        "version": header.version,
        "att_key_type": header.att_key_type,
        "tee_type": f"0x{header.tee_type:x}",
        "qe_vendor_id": header.qe_vendor_id.hex(),
    }
    if header.version >= 5:
        out["body_type"] = quote.body_type
    out.update({name: getattr(body, name).hex() for name in _BODY_FIELDS})
    for name in _TDX15_FIELDS:  # TDX 1.5 bodies (v5 body type 3) only
        value = getattr(body, name)
        if value is not None:
            out[name] = value.hex()
    out["td_attributes_decoded"] = decode_td_attributes(body.td_attributes)
    out["xfam_decoded"] = decode_xfam(body.xfam)
    out["debug"] = is_debug(body.td_attributes)
    out["sept_ve_disable"] = sept_ve_disable(body.td_attributes)
    out["qe_report_isv_svn"] = parse_enclave_report(quote.qe_report).isvsvn
    out["trailing_bytes"] = quote.trailing_bytes
    out["trailing_nonzero"] = quote.trailing_nonzero
    if pck is not None:
        out.update(fmspc=pck.fmspc.hex(), pce_id=pck.pce_id.hex(), pck_cpu_svn=pck.cpusvn.hex(), pck_pce_svn=pck.pcesvn)
    return out
