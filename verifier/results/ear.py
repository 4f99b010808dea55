"""EAT Attestation Result (EAR) claims per draft-ietf-rats-ear-04 (JWT serialisation: RFC 7519, EAT RFC 9711).

The claims-set (draft s3, Figure 1): `eat_profile` `tag:ietf.org,2026:rats/ear#04`, `iat` and `exp` as integers,
`ear_verifier_id` {developer, build} (AR4SI s3.3), the optional overall `ear_status` (s3: no better than the worst
submodule), `submods` and `eat_nonce` (RFC 9711 s4.1: 8..64 bytes, base64url), beside the registered JWT claims
`iss`, `jti` and RFC 7800 `cnf`. One appraisal is one submodule named after its TEE (`nitro`, `snp`, `tdx`, ...).
A composite appraisal (verifier.composite: a CPU TEE with its GPUs) has one submodule more per GPU, `gpu0`..`gpu<N-1>`
in request order, each with its own status, trust vector, policy, attester claims and verifier claims (findings,
matched reference values, collateral, revocation, and `evidence_sha384`: the SHA-384 of its report, which the CPU
submodule's REPORT_DATA commits to); the top-level `ear_status` is then the worst of all (none counting as worse than
warning, verifier.evaluation `overall_status`), and the CPU submodule's the CPU TEE's own.

The submodule (draft s3.1, Figure 2): `ear_status` (mandatory; the status a relying party must check is this one,
`submods.<tee>.ear_status`: the top-level copy only helps a reader of composite results), the AR4SI
`ear_trustworthiness_vector` (s3.1 of draft-ietf-rats-ar4si), `ear_appraisal_policy_ids` (a list, s3.1),
`ear_attester_claims` (the claims taken from the evidence) and `ear_verifier_claims` (the claims this verifier added:
findings, matched reference values, workload(s), collateral, revocation, policy SHA-256, reference-set version).
Both are map-valued claims the draft defines for exactly this (s3.1), so this verifier mints no claim name of its own
and every verifier-specific detail sits in one map per submodule, not in loose private claims (s4: an extension
"MUST be a map"; s4.1 recommends collision-resistant names for any private one; we need none).

Size: `verifier.results.ear_size` keeps every token under 8 KB (long values become SHA-256 digests; only a
claims-set that is still too large is abridged, saying so in `ear_verifier_claims.abridged`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec

from verifier.appraisal.model import Appraisal
from verifier.errors import VerifierError
from verifier.evaluation import Component, overall_status
from verifier.results.ear_size import compact, detached, fit
from verifier.results.keys import b64url_encode

EAR_PROFILE = "tag:ietf.org,2026:rats/ear#04"  # draft-ietf-rats-ear-04 s3 (eat_profile)
DEFAULT_LIFETIME = timedelta(minutes=5)
VERIFIER_DEVELOPER = "tee-verifier"
EAT_NONCE_SIZES = range(8, 65)  # RFC 9711 s4.1 / draft s3: 8..64 bytes
P = ParamSpec("P")


def _json_copy(value: Any, copy: Callable[[Any], Any] = detached) -> Any:
    """A detached, JSON-only copy (the appraisal's dicts stay mutable; `compact` also applies size rule 1);
    non-JSON values are a bug."""
    try:
        return copy(value)
    except (TypeError, ValueError, RecursionError):
        raise VerifierError("EAR_CLAIMS_NOT_JSON", "the appraisal holds a value JSON cannot carry") from None


@dataclass(frozen=True)
class EncodedEar:
    """EAR claims and their JSON as the signer serialises them (`keys.claims_json`): `ResultSigner.sign(claims,
    payload=payload)` signs them without serialising them again."""

    claims: dict[str, Any]
    payload: bytes


def encode_ear(
    appraisal: Appraisal,
    *,
    issuer: str,
    issued_at: datetime,
    lifetime: timedelta,
    nonce: bytes | None,
    token_id: str,
    verifier_build: str,
    cnf_jwk: dict[str, Any] | None = None,
    policy_sha256: str | None = None,
    reference_set_version: int | None = None,
    components: Sequence[Component] = (),
) -> EncodedEar:
    """EAR claims for one appraisal (module docstring): `iat`/`exp` in whole seconds (draft s3, RFC 7519 s4.1),
    `eat_nonce` base64url when a nonce of 8..64 bytes was given (a longer one, which the API accepts for evidence
    formats that carry it, is named by `ear_verifier_claims.nonce_sha256` instead, as the draft allows no longer
    `eat_nonce`), `ear_status` both top-level and in the submodule, `cnf` (RFC 7800 s3.2) when the workload's key
    was bound. `appraisal` is the evidence's own (for a composite the CPU TEE's, with its own status) and
    `components` the GPUs' (module docstring).

    Deterministic: the same inputs give equal dicts with the same key order, hence the same JSON.
    `policy_sha256` (SHA-256 of the policy's canonical JSON) and `reference_set_version` (the reference-value set
    appraised against) go into `ear_verifier_claims` when given. Raises ValueError for a naive `issued_at` or a
    non-positive `lifetime`, VerifierError EAR_CLAIMS_NOT_JSON for claims JSON cannot carry.
    """
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    if lifetime <= timedelta(0):
        raise ValueError("lifetime must be positive")
    iat = int(issued_at.timestamp())
    long_nonce = nonce is not None and len(nonce) not in EAT_NONCE_SIZES
    submod = _submodule(
        appraisal,
        policy_sha256,
        reference_set_version,
        hashlib.sha256(nonce).hexdigest() if nonce is not None and long_nonce else None,
    )
    claims: dict[str, Any] = {
        "eat_profile": EAR_PROFILE,
        "iat": iat,
        "exp": iat + int(lifetime.total_seconds()),
        "iss": issuer,
        "jti": token_id,
        "ear_verifier_id": {"developer": VERIFIER_DEVELOPER, "build": verifier_build},
        "ear_status": overall_status([appraisal.status, *(c.appraisal.status for c in components)]).value,
        "submods": {appraisal.tee: submod},
    }
    gpus = [_component(component) for component in components]
    claims["submods"].update({component.name: gpu for component, gpu in zip(components, gpus, strict=True)})
    if nonce is not None and not long_nonce:
        claims["eat_nonce"] = b64url_encode(nonce)
    if cnf_jwk is not None:
        claims["cnf"] = {"jwk": dict(cnf_jwk)}  # RFC 7800: the key the attested workload holds
    try:
        payload = fit(claims, submod, *gpus)
    except (TypeError, ValueError, RecursionError):
        raise VerifierError("EAR_CLAIMS_NOT_JSON", "the result holds a value JSON cannot carry") from None
    return EncodedEar(claims, payload)


def _claims_only(encode: Callable[P, EncodedEar]) -> Callable[P, dict[str, Any]]:
    def claims(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        return encode(*args, **kwargs).claims

    claims.__doc__ = "`encode_ear(...).claims`: the claims only. Raises what `encode_ear` raises."
    return claims


build_ear = _claims_only(encode_ear)


def _component(component: Component) -> dict[str, Any]:
    """The submodule of one GPU of a composite (module docstring). Raises VerifierError EAR_CLAIMS_NOT_JSON."""
    submod = _submodule(component.appraisal, None, None, None)
    submod["ear_verifier_claims"]["evidence_sha384"] = component.evidence_sha384
    return submod


def _submodule(
    appraisal: Appraisal, policy_sha256: str | None, reference_set_version: int | None, nonce_sha256: str | None
) -> dict[str, Any]:
    """The EAR-appraisal of `appraisal` (draft s3.1), the optional claims only when present: an empty trust vector
    has no JSON form (`non-empty` in the CDDL) and is left out. Raises VerifierError EAR_CLAIMS_NOT_JSON."""
    submod: dict[str, Any] = {"ear_status": appraisal.status.value}
    vector = appraisal.trust_vector.to_json()
    if vector:
        submod["ear_trustworthiness_vector"] = vector
    if appraisal.policy_id:
        submod["ear_appraisal_policy_ids"] = [appraisal.policy_id]
    attester = _json_copy(appraisal.claims, compact)
    if attester:
        submod["ear_attester_claims"] = attester
    submod["ear_verifier_claims"] = _verifier_claims(appraisal, policy_sha256, reference_set_version, nonce_sha256)
    return submod


def _verifier_claims(
    appraisal: Appraisal, policy_sha256: str | None, reference_set_version: int | None, nonce_sha256: str | None
) -> dict[str, Any]:
    """`ear_verifier_claims`: what this verifier concluded beyond the AR4SI vector, the optional members only when
    present. A finding's `expected`/`actual` only when not empty. Raises VerifierError EAR_CLAIMS_NOT_JSON."""
    findings = []
    for f in appraisal.findings:
        finding = {"code": f.code, "tier": f.tier.value, "claim": f.claim.value}
        finding.update({name: text for name, text in (("expected", f.expected), ("actual", f.actual)) if text})
        findings.append(_json_copy(finding, compact))
    claims: dict[str, Any] = {
        "findings": findings,
        "matched_reference_values": list(appraisal.matched_reference_values),
    }
    if appraisal.workload is not None:
        claims["workload"] = _json_copy(appraisal.workload)
        claims["workloads"] = _json_copy(list(appraisal.workloads))
    if appraisal.collateral:
        claims["collateral"] = _json_copy(list(appraisal.collateral))
    if appraisal.revocation is not None:
        claims["revocation"] = appraisal.revocation
    if policy_sha256 is not None:
        claims["policy_sha256"] = policy_sha256
    if reference_set_version is not None:
        claims["reference_set_version"] = reference_set_version
    if nonce_sha256 is not None:
        claims["nonce_sha256"] = nonce_sha256
    return claims
