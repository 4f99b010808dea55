"""Composite evidence (issue 15 item 4): one CPU TEE report (SEV-SNP or TDX) with the reports of the N GPUs its
confidential VM drives, appraised together in one request, one appraisal time, one result.

The binding rule is in verifier.appraisal.binding (module docstring, `composite_report_data`): every GPU report's
SPDM request nonce equals the request's challenge nonce (GPU_NONCE_MISMATCH, in that GPU's component) and the CPU
report's REPORT_DATA commits to SHA-384 of every GPU report (COMPOSITE_BINDING_MISMATCH, in the CPU TEE's findings:
verifier.findings). Here:

- `verify_gpus`: steps 2-6 for each GPU report with its own collateral, by the scheme registered as "gpu";
- `with_gpus`: steps 7-8 for the GPUs under each candidate workload version's policy (`appraise_gpus`), and the
  version's GPU requirement (`<tee>.min_gpus`, verifier.workloads.model): fewer affirming GPUs than it asks is the
  miss WORKLOAD_GPUS_INSUFFICIENT, so the version does not match;
- `record_findings`: the GPUs' results in the CPU appraisal's row (one appraisal id): per GPU one entry
  COMPONENT_APPRAISED (its status and report SHA-384) followed by its findings, each naming its `component`;
- `kept_request` / `unpack_kept`: the GPU reports kept beside the CPU evidence (as collateral entries under
  `gpu<i>/`, names no request can carry) so impact analysis replays the composite."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .appraisal.binding import identity_finding
from .appraisal.model import CONTRAINDICATED, Appraisal, Claim, Finding, Tier, combine
from .appraisal.policy import Policy
from .appraisal.registry import get_scheme
from .appraisal.scheme import Scheme, Verified
from .errors import RequestError, UnavailableError
from .evaluation import Component
from .findings import evidence_finding
from .reference_values.kinds import kinds_of
from .reference_values.model import ReferenceValue, ReferenceValueReader
from .requests import AppraisalRequest, GpuEvidence
from .tee.base import VerifyContext
from .workloads.matching import Candidate
from .workloads.model import COMPOSITE_TEES, WorkloadVersion

GPU_TEE = "gpu"
COMPONENT_CODE = "COMPONENT_APPRAISED"  # the appraisal row's entry naming one GPU (`record_findings`)
_KEPT = re.compile(r"gpu(\d{1,2})/(evidence|collateral/(.+))", re.DOTALL)


@dataclass(frozen=True)
class GpuVerified:
    """Steps 2-6 of one GPU report: its index in the request, the GPU scheme, the verification outcome and the
    SHA-384 (hex) of the report bytes (what REPORT_DATA commits to)."""

    index: int
    scheme: Scheme
    verified: Verified
    evidence_sha384: str

    @property
    def name(self) -> str:
        return f"gpu{self.index}"


def check_request(scheme: Scheme, request: AppraisalRequest) -> None:
    """Refuse GPU reports beside evidence whose REPORT_DATA cannot bind them. Raises RequestError
    COMPOSITE_TEE_UNSUPPORTED (GPUs beside Nitro or GPU evidence: only SEV-SNP and TDX reports can)."""
    if request.gpus and scheme.name not in COMPOSITE_TEES:
        raise RequestError(
            "COMPOSITE_TEE_UNSUPPORTED",
            f"GPU reports can be appraised only beside a {' or '.join(COMPOSITE_TEES)} report, not {scheme.name}",
        )


def verify_gpus(
    request: AppraisalRequest, context: VerifyContext, *, allow_incomplete: bool
) -> tuple[GpuVerified, ...]:
    """Steps 2-6 for each GPU report of `request` with its own collateral (`context` otherwise: the appraisal time,
    anchors, collateral source). Raises RequestError EVIDENCE_KIND_UNSUPPORTED when no "gpu" scheme is registered,
    UnavailableError GPU_COLLATERAL_UNAVAILABLE when a GPU's collateral is unavailable (unless `allow_incomplete`:
    the component then says so and is never affirming)."""
    if not request.gpus:
        return ()
    scheme = get_scheme(GPU_TEE)
    out = []
    for index, gpu in enumerate(request.gpus):
        verified = scheme.verifier.verify(gpu.evidence, replace(context, collateral=gpu.collateral))
        if verified.incomplete and not allow_incomplete:
            raise UnavailableError(
                "GPU_COLLATERAL_UNAVAILABLE",
                f"vendor collateral for GPU report {index} is unavailable ({verified.incomplete}); the appraisal "
                "cannot be completed",
                retry_after=verified.retry_after,
            )
        out.append(GpuVerified(index, scheme, verified, hashlib.sha384(gpu.evidence).hexdigest()))
    return tuple(out)


def appraise_gpus(
    gpus: Sequence[GpuVerified], policy: Policy, at: dt.datetime, reader: ReferenceValueReader, nonce: bytes | None
) -> tuple[Component, ...]:
    """Steps 7-8 for each verified GPU under `policy` with the active GPU reference values (`gpu_references`) and,
    with `nonce` (the appraisal checks freshness), its nonce binding. Raises what the GPU scheme's appraiser raises
    (typed errors) and the reader's UnavailableError (DATABASE_*)."""
    references = gpu_references(gpus, reader, at)
    return tuple(_appraise_one(gpu, policy, at, references, nonce) for gpu in gpus)


def _appraise_one(
    gpu: GpuVerified, policy: Policy, at: dt.datetime, references: Sequence[ReferenceValue], nonce: bytes | None
) -> Component:
    verified = gpu.verified
    baseline: dict[Claim, int] = {}
    matched: list[ReferenceValue] = []
    if verified.failure is not None:
        findings = [evidence_finding(gpu.scheme, verified.failure)]
    elif verified.incomplete:
        findings = [
            identity_finding(
                "GPU_COLLATERAL_UNAVAILABLE",
                f"{gpu.name}: its vendor collateral is unavailable: the appraisal is incomplete",
                "the GPU's collateral",
                verified.incomplete,
            )
        ]
    else:
        baseline, appraised, matched = gpu.scheme.appraise(verified, policy, references, at)
        findings = list(appraised)
    if nonce is not None and verified.parsed is not None:
        findings.extend(_nonce_findings(gpu, nonce))
    vector = combine(dict(baseline), findings)
    appraisal = Appraisal(
        tee=gpu.scheme.name,
        status=vector.status,
        trust_vector=vector,
        claims=verified.claims,
        findings=tuple(findings),
        policy_id=policy.policy_id,
        matched_reference_values=tuple(f"{r.kind}:{r.label}:{r.id}" for r in matched),
        collateral=tuple(item.to_json() for item in verified.collateral),
        revocation=verified.revocation,
    )
    return Component(gpu.name, appraisal, gpu.evidence_sha384, verified.incomplete)


def _nonce_findings(gpu: GpuVerified, nonce: bytes) -> list[Finding]:
    """GPU_NONCE_MISMATCH when the report's SPDM request nonce (claim `nonce`, signed by the GPU) is not the
    request's challenge nonce: a report of another session. Never raises."""
    carried = gpu.verified.claims.get("nonce")
    if carried == nonce.hex():
        return []
    return [
        identity_finding(
            "GPU_NONCE_MISMATCH",
            f"{gpu.name}: the GPU report's SPDM request nonce is not the request's challenge nonce",
            nonce.hex(),
            str(carried or "absent")[:128],
        )
    ]


def with_gpus(
    candidates: Sequence[Candidate],
    gpus: Sequence[GpuVerified],
    at: dt.datetime,
    reader: ReferenceValueReader,
    nonce: bytes | None,
) -> list[Candidate]:
    """Each candidate with the GPUs appraised under its policy (once per policy) and its version's GPU requirement
    checked (module docstring). Unchanged when there are no GPUs and no version asks for any. Raises what
    `appraise_gpus` raises and the reader's UnavailableError (DATABASE_*)."""
    if not gpus and not any(c.version is not None and c.version.gpus_required for c in candidates):
        return list(candidates)
    references = gpu_references(gpus, reader, at)
    by_policy: dict[int, tuple[Component, ...]] = {}
    out = []
    for candidate in candidates:
        key = id(candidate.policy)  # the policies live as long as `candidates`: ids are not reused meanwhile
        if key not in by_policy:
            by_policy[key] = tuple(_appraise_one(gpu, candidate.policy, at, references, nonce) for gpu in gpus)
        components = by_policy[key]
        findings, matched = requirement(candidate.version, components)
        out.append(
            replace(
                candidate,
                findings=(*candidate.findings, *findings),
                matched=(*candidate.matched, *matched),
                components=components,
            )
        )
    return out


def gpu_references(gpus: Sequence[GpuVerified], reader: ReferenceValueReader, at: dt.datetime) -> list[ReferenceValue]:
    """The active reference values of the GPU scheme's kinds (`gpu.*`: GPU-wide pins, every workload's)."""
    if not gpus:
        return []
    scheme = gpus[0].scheme
    kinds = list(kinds_of(scheme.name))
    return [r for r in reader.active(kinds, at) if scheme.owns_kind(r.kind)] if kinds else []


def requirement(
    version: WorkloadVersion | None, components: Sequence[Component]
) -> tuple[list[Finding], list[ReferenceValue]]:
    """(the misses, the matched `<tee>.min_gpus` values) of `version`'s GPU requirement: at least k of `components`
    affirming (a GPU in CC mode whose report, chain, RIMs and revocation all hold). A version requiring GPUs but
    pinning no value of its CPU TEE never matches. Never raises."""
    if version is None or not version.gpus_required:
        return [], []
    wanted, kind = version.min_gpus, version.gpu_kind
    if not version.required:
        return [_miss("REFERENCE_VALUE_MISSING", f"{kind} alone pins no {version.tee} image", "a value", "none")], []
    affirming = [c.name for c in components if c.appraisal.status is Tier.AFFIRMING]
    if wanted is None:
        return [_miss("WORKLOAD_GPUS_INSUFFICIENT", f"no {kind} value is active", f"an active {kind}", "none")], []
    if len(affirming) < wanted:
        return [
            _miss(
                "WORKLOAD_GPUS_INSUFFICIENT",
                f"{kind}: the workload version requires {wanted} affirming GPUs bound to this {version.tee} report",
                f">= {wanted} affirming GPUs",
                f"{len(affirming)} of {len(components)} ({', '.join(affirming) or 'none'})",
            )
        ], []
    return [], list(version.gpus)


def _miss(code: str, message: str, expected: str, actual: str) -> Finding:
    return Finding(
        code=code, claim=Claim.HARDWARE, value=CONTRAINDICATED, message=message, expected=expected, actual=actual
    )


def record_findings(findings: Sequence[Finding], components: Sequence[Component]) -> tuple[dict[str, Any], ...]:
    """The appraisal row's findings (module docstring): the CPU TEE's, then per GPU its COMPONENT_APPRAISED entry
    and its findings, each with `component`. Never raises."""
    rows = [f.to_json() for f in findings]
    for component in components:
        appraisal = component.appraisal
        rows.append(
            {
                "code": COMPONENT_CODE,
                "component": component.name,
                "tee": appraisal.tee,
                "tier": appraisal.status.value,
                "claim": "",
                "value": 0,
                "expected": "",
                "actual": component.evidence_sha384,
                "message": f"{component.name} ({appraisal.tee}): {appraisal.status.value}; actual: report SHA-384",
            }
        )
        rows.extend({**f.to_json(), "component": component.name} for f in appraisal.findings)
    return tuple(rows)


def kept_request(request: AppraisalRequest) -> AppraisalRequest:
    """`request` as it is kept for impact analysis: the GPU reports and their collateral as collateral entries
    `gpu<i>/evidence` and `gpu<i>/collateral/<name>` (a request's own names never hold a "/"). Never raises."""
    if not request.gpus:
        return request
    files = dict(request.collateral)
    for index, gpu in enumerate(request.gpus):
        files[f"gpu{index}/evidence"] = gpu.evidence
        files.update({f"gpu{index}/collateral/{name}": data for name, data in gpu.collateral.items()})
    return replace(request, collateral=files, gpus=())


def unpack_kept(request: AppraisalRequest) -> AppraisalRequest:
    """The composite request `kept_request` kept (unchanged when it carries no `gpu<i>/` entries; entries of GPUs
    missing their report are dropped). Never raises."""
    if request.gpus or not any("/" in name for name in request.collateral):
        return request
    cpu: dict[str, bytes] = {}
    reports: dict[int, bytes] = {}
    collateral: dict[int, dict[str, bytes]] = {}
    for name, data in request.collateral.items():
        match = _KEPT.fullmatch(name)
        if match is None:
            cpu[name] = data
        elif match.group(3) is None:
            reports[int(match.group(1))] = data
        else:
            collateral.setdefault(int(match.group(1)), {})[match.group(3)] = data
    count = next(i for i in range(len(reports) + 1) if i not in reports)
    gpus = tuple(GpuEvidence(reports[i], collateral.get(i, {})) for i in range(count))
    return replace(request, collateral=cpu, gpus=gpus)
