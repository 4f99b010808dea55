"""The schemes, one per TEE (`verifier.appraisal.scheme`): what the service, the gRPC conversion and the CLI read.

Each scheme pairs a TEE's verifier (tee/<kind>/) with its appraiser (appraisal/<kind>.py): the registry
kind -> (verifier, appraiser) of ../shared/ARCHITECTURE.md, above tee/. Adding a TEE is one tee/<kind>/ package, one
appraiser (appraisal/<kind>.py) and one line in `_built_in`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RequestError
from ..tee.base import SchemeVerifier
from ..tee.formats import is_cose_sign1, is_gpu_spdm_report, is_snp_report, is_tdx_quote
from ..tee.gpu.verify import GpuVerifier
from ..tee.nitro.evidence import NitroVerifier
from ..tee.sevsnp.evidence import SnpVerifier
from ..tee.tdx.evidence import TdxVerifier
from . import gpu as gpu_appraisal
from . import nitro as nitro_appraisal
from . import snp as snp_appraisal
from . import tdx as tdx_appraisal
from .binding import DocumentBinding, ReportDataBinding
from .scheme import Scheme, TeeScheme


def _nitro_pcr0(claims: Mapping[str, Any]) -> Any:
    pcrs = claims.get("pcrs")
    return pcrs.get("0", pcrs.get(0)) if isinstance(pcrs, dict) else None


def _built_in() -> list[Scheme]:
    document, report_data = DocumentBinding(), ReportDataBinding()
    return [
        TeeScheme(
            "nitro",
            NitroVerifier(),
            nitro_appraisal.appraise,
            document,
            "pcr0",
            aliases=("aws-nitro",),
            proto_kind="EVIDENCE_KIND_NITRO",
            measure=_nitro_pcr0,
            detect=is_cose_sign1,
        ),
        TeeScheme(
            "snp",
            SnpVerifier(),
            snp_appraisal.appraise,
            report_data,
            "measurement",
            aliases=("sev-snp", "sevsnp"),
            proto_kind="EVIDENCE_KIND_SEV_SNP",
            detect=is_snp_report,
        ),
        TeeScheme(
            "tdx",
            TdxVerifier(),
            tdx_appraisal.appraise,
            report_data,
            "mr_td",
            aliases=("intel-tdx",),
            proto_kind="EVIDENCE_KIND_TDX",
            detect=is_tdx_quote,
        ),
        TeeScheme(
            "gpu",
            GpuVerifier(),
            gpu_appraisal.appraise,
            gpu_appraisal.SpdmNonceBinding(),
            "fwid",
            aliases=("nvidia-gpu",),
            proto_kind="EVIDENCE_KIND_NVIDIA_GPU",
            detect=is_gpu_spdm_report,
        ),
    ]


_SCHEMES: dict[str, Scheme] = {}
_ALIASES: dict[str, str] = {}


def register(scheme: Scheme) -> None:
    """Add `scheme` (tests register fakes). Raises ValueError when its name or an alias is already taken."""
    names = (scheme.name, *scheme.aliases)
    taken = [n for n in names if n in _SCHEMES or n in _ALIASES]
    if taken or len(set(names)) != len(names):
        raise ValueError(f"evidence kind name(s) already registered: {taken or names}")
    _SCHEMES[scheme.name] = scheme
    _ALIASES.update({alias: scheme.name for alias in scheme.aliases})


def unregister(name: str) -> None:
    """Remove the scheme named `name` and its aliases (no-op when absent)."""
    scheme = _SCHEMES.pop(name, None)
    for alias in scheme.aliases if scheme is not None else ():
        _ALIASES.pop(alias, None)


for _scheme in _built_in():
    register(_scheme)


def schemes() -> list[Scheme]:
    """Every registered scheme, by name."""
    return [_SCHEMES[name] for name in sorted(_SCHEMES)]


def tee_names() -> list[str]:
    """The registered schemes' names, sorted (the CLI `--tee` choices, `known_tees` is held equal to it). Never
    raises."""
    return sorted(_SCHEMES)


def get_scheme(tee: str) -> Scheme:
    """The scheme of evidence kind `tee` (a name or alias, any case). Raises RequestError
    EVIDENCE_KIND_UNSUPPORTED for a kind no scheme is registered for."""
    name = _ALIASES.get(tee.lower(), tee.lower())
    try:
        return _SCHEMES[name]
    except KeyError:
        raise RequestError(
            "EVIDENCE_KIND_UNSUPPORTED", f"evidence kind {tee!r} is not supported (supported: {tee_names()})"
        ) from None


def get_verifier(tee: str) -> SchemeVerifier:
    """The verifier of evidence kind `tee` (`get_scheme`; raises as it does)."""
    return get_scheme(tee).verifier
