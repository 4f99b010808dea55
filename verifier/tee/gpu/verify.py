"""The NVIDIA GPU verifier behind the TEE seam: parse the SPDM report, verify it against its device chain, check
revocation and verify its RIMs (no policy), like the SEV-SNP, TDX and Nitro verifiers.

Steps (`GpuVerifier.verify`):
1. `spdm.decode`: the structure (bounded, strict); a ParseError is the failure and nothing is read;
2. the claims (`claims.claims`), from the report and the chain as given;
3. `spdm.check`: versions, codes, the request's parameters (a failure keeps the claims);
4. the device chain to the pinned NVIDIA Device Identity CA, the signature and the FWID binding (`device`);
5. revocation: the OCSP status of the device chain's BROM, Provisioner ICA and Identity certificates (not the FMC LF
   leaf, not the root, as nv-local-gpu-verifier asks; `verifier.trust.ocsp.check_chain`) from the responses sent
   as collateral (`ocsp*.der`) or fetched. Revoked (any reason, certificateHold included) is the failure
   GPU_CERT_REVOKED; unavailable is a fact, and the policy's `gpu.ocsp` decides;
6. the driver and VBIOS RIMs (`rim_source.gather`), each verified at the appraisal time, and the OCSP status of
   their signing chains; a RIM that cannot be had (offline, the RIM service unavailable) makes the result
   `incomplete` (never affirming; exit 3 from the CLI), one NVIDIA does not have (COLLATERAL_NOT_FOUND) is only a
   missing RIM for the appraiser.

The outcome is `VerifiedEvidence[SpdmReport, GpuFacts]`; `revocation` is "checked" or "unavailable"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from cryptography import x509

from ...clock import to_rfc3339
from ...collateral.nvidia_keys import SourceOcspFetcher
from ...errors import EvidenceError, ParseError
from ...trust.chain import VerifiedLinks
from ...trust.ocsp import OcspCache, OcspOutcome, check_chain
from ..base import CollateralUsed, VerifiedEvidence, VerifyContext
from . import device, rim_source, spdm
from .claims import architecture
from .claims import claims as report_claims
from .facts import GpuFacts, Revocation, RimOutcome
from .spdm import SpdmReport

OCSP_PREFIX, OCSP_SUFFIX = "ocsp", ".der"  # collateral names of DER OCSP responses: ocsp/<x>.der, ocsp-<x>.der
# RIMs that are missing rather than unavailable: NVIDIA has none (the source's COLLATERAL_NOT_FOUND), or the report
# does not say enough to name one. The appraiser reports them; they do not make the result incomplete.
NOT_INCOMPLETE = ("COLLATERAL_NOT_FOUND", rim_source.NO_ID)


def ocsp_responses(collateral: Mapping[str, bytes]) -> tuple[bytes, ...]:
    """The DER OCSP responses sent as collateral (names starting "ocsp" and ending ".der"), by name. Never raises."""
    return tuple(
        collateral[name] for name in sorted(collateral) if name.startswith(OCSP_PREFIX) and name.endswith(OCSP_SUFFIX)
    )


def _check_chain(
    chain: Sequence[x509.Certificate], ctx: VerifyContext, cache: OcspCache, *, skip_leaf: bool
) -> OcspOutcome:
    """The OCSP status of `chain` (`verifier.trust.ocsp.check_chain`): the responses sent as collateral, the
    verifier's cache, then NVIDIA's responder through the collateral source (offline: none). Never raises."""
    return check_chain(
        chain,
        at=ctx.at,
        responses=ocsp_responses(ctx.collateral),
        fetch=SourceOcspFetcher(ctx.source),
        skip_leaf=skip_leaf,
        cache=cache,
    )


def _revoked(detail: str) -> EvidenceError:
    return EvidenceError("GPU_CERT_REVOKED", f"a certificate is revoked: {detail}", expected="good", actual="revoked")


class GpuVerifier:
    """NVIDIA Hopper and Blackwell SPDM attestation reports (module docstring)."""

    tee = "gpu"

    def __init__(self, links: VerifiedLinks | None = None, ocsp_cache: OcspCache | None = None) -> None:
        """`links`: the cache of verified signatures, `ocsp_cache` of verified OCSP statuses (the composition root may
        share them); fresh ones by default."""
        self.links = links if links is not None else VerifiedLinks()
        self.ocsp_cache = ocsp_cache if ocsp_cache is not None else OcspCache()

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence[SpdmReport, GpuFacts]:
        """Steps 1-6 (module docstring). Never raises for bad evidence or missing collateral: the first error is the
        result's `failure`; RIMs that cannot be had make it `incomplete` (their collateral code, `retry_after`)."""
        try:
            report = spdm.decode(evidence)
        except ParseError as exc:
            return VerifiedEvidence(self.tee, None, {}, exc)
        try:
            certs = device.load_chain(ctx.collateral)
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, report, report_claims(report), exc)
        claims = report_claims(report, certs)
        try:
            spdm.check(report)
            chain = device.verify_chain(certs, ctx.anchors, ctx.at, self.links)
            device.verify_signature(report, chain[0])
            found, compared = device.check_fwid(report, chain[0])
        except EvidenceError as exc:
            return VerifiedEvidence(self.tee, report, claims, exc)
        revocation = _check_chain(chain, ctx, self.ocsp_cache, skip_leaf=True)
        if revocation.status == "revoked":
            return VerifiedEvidence(self.tee, report, claims, _revoked(revocation.detail), revocation="checked")
        driver, vbios = self._rims(report, chain, ctx)
        facts = GpuFacts(
            chain=tuple(chain),
            architecture=architecture(report),
            leaf_fwid=found,
            fwid_checked=compared,
            revocation=_overall(revocation, driver, vbios),
            revocation_detail=_detail(revocation, driver, vbios),
            driver=driver,
            vbios=vbios,
        )
        missing = next((o for o in (driver, vbios) if o.unavailable not in (None, *NOT_INCOMPLETE)), None)
        return VerifiedEvidence(
            self.tee,
            report,
            claims,
            incomplete=missing.unavailable if missing is not None else None,
            retry_after=missing.retry_after if missing is not None else None,
            revocation=facts.revocation,
            collateral=_collateral(chain, revocation, driver, vbios),
            facts=facts,
        )

    def _rims(
        self, report: SpdmReport, chain: Sequence[x509.Certificate], ctx: VerifyContext
    ) -> tuple[RimOutcome, RimOutcome]:
        """Both RIMs (`rim_source.gather`), each with the OCSP status of its signing chain: a revoked signer makes
        the RIM's error GPU_CERT_REVOKED."""
        outcomes = (
            rim_source.gather("driver", rim_source.driver_rim_id(report, chain), ctx, self.links),
            rim_source.gather("vbios", rim_source.vbios_rim_id(report), ctx, self.links),
        )
        checked = []
        for outcome in outcomes:
            if outcome.rim is not None:
                status = _check_chain(outcome.rim.chain, ctx, self.ocsp_cache, skip_leaf=False)
                if status.status == "revoked":
                    outcome = replace(outcome, rim=None, error=_revoked(status.detail))
                elif status.status == "good":
                    outcome = replace(outcome, revocation="checked")
                else:
                    outcome = replace(outcome, revocation="unavailable", revocation_detail=status.detail)
            checked.append(outcome)
        return checked[0], checked[1]


def _overall(device_chain: OcspOutcome, *rims: RimOutcome) -> Revocation:
    """ "checked" when the device chain and every RIM chain that verified had a good OCSP status, else
    "unavailable". Never raises."""
    if device_chain.status != "good" or any(o.revocation == "unavailable" for o in rims):
        return "unavailable"
    return "checked"


def _detail(device_chain: OcspOutcome, *rims: RimOutcome) -> str:
    """Why revocation is unavailable: the device chain's and each RIM chain's detail. Never raises."""
    details = [device_chain.detail] if device_chain.status != "good" else []
    details += [f"{o.kind} RIM: {o.revocation_detail}" for o in rims if o.revocation == "unavailable"]
    return "; ".join(details)


def _collateral(
    chain: Sequence[x509.Certificate], revocation: OcspOutcome, *rims: RimOutcome
) -> tuple[CollateralUsed, ...]:
    """What decided: the device chain (from the request), its OCSP status when it was checked (the earliest
    nextUpdate of the responses used, and where they came from) and each RIM that verified. Never raises."""
    used = [
        CollateralUsed(
            item="nvidia.cert_chain",
            issued=to_rfc3339(max(c.not_valid_before_utc for c in chain)),
            next_update=to_rfc3339(min(c.not_valid_after_utc for c in chain)),
            source="request",
        )
    ]
    if revocation.status == "good":
        used.append(
            CollateralUsed(
                item="nvidia.ocsp",
                next_update=to_rfc3339(revocation.next_update) if revocation.next_update is not None else None,
                source=",".join(sorted({c.source for c in revocation.certificates})) or None,
            )
        )
    used += [entry for entry in map(rim_source.collateral_used, rims) if entry is not None]
    return tuple(used)
