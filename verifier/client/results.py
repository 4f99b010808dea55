"""Relying-party check of an EAR attestation result (draft-ietf-rats-ear-04) carried as an ES256 JWT.

Verification is independent of the server's signer: compact JWS (RFC 7515 s7.1) with `alg` ES256 only
(RFC 7518 s3.4, raw r||s), `typ` `eat+jwt` (RFC 8725 s3.11 explicit typing) and no `crit`; the key comes from the
JWKS by `kid`, never from the token (`jwk`/`jku`/`x5u` headers are ignored). Then the RFC 7519 claims (`iss`, `exp`,
`iat`, `nbf`), the EAR profile, EAT `eat_nonce` (RFC 9711 s4.1), the top-level `ear_status` and every submodule's
`ear_status` (the ones a relying party must check, draft s3.1: the evidence's and, for composite evidence, each GPU
component's `gpu0`..; the result is only as good as its worst part), the number of GPUs (`min_gpus`), and from the
evidence's submodule's `ear_verifier_claims` map the matched workloads and the policy hash. RFC 7800 `cnf.jwk` is
returned for the caller to bind the workload's key (e.g. to its TLS key).

The signature check is in verifier.client.jws, the claim checks (one helper each, run here in order) in
verifier.client.claim_checks; the names they export are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from verifier.client.claim_checks import (
    STATUS_RANK,
    _cnf,
    _findings,
    _typed,
    _vector,
    check_gpus,
    check_issuer,
    check_labels,
    check_lifetime,
    check_nonce,
    check_policy,
    check_profile,
    check_status,
    check_submodule,
    check_workload,
    components,
    matched_workloads,
    policy_ids,
    verifier_claims,
)
from verifier.client.jwks import JwksCache
from verifier.client.jws import ALG, COORDINATE, ResultError, b64url, verify_jws

__all__ = [
    "ALG",
    "COORDINATE",
    "STATUS_RANK",
    "ComponentClaims",
    "ResultClaims",
    "ResultError",
    "b64url",
    "verify_jws",
    "verify_result",
]


@dataclass(frozen=True)
class ComponentClaims:
    """One GPU component of a composite result (submodule `gpu<i>`): its status, trust vector, attester claims
    (empty when abridged), findings and verifier claims (`evidence_sha384`: SHA-384 of its report)."""

    name: str
    status: str
    trust_vector: dict[str, int]
    claims: dict[str, Any]
    findings: tuple[dict[str, Any], ...]
    verifier_claims: dict[str, Any]


@dataclass(frozen=True)
class ResultClaims:
    """The verified claims of one EAR (the evidence's submodule `tee`, and for composite evidence its GPU
    `components`). `status` is the whole result's (the worst), `submod_status` the evidence's own. `raw` is the whole
    verified payload; `claims` is the submodule's `ear_attester_claims` (values over 64 bytes as `<name>_sha256`
    digests; empty when abridged), `verifier_claims` its `ear_verifier_claims`."""

    status: str
    tee: str
    submod_status: str
    trust_vector: dict[str, int]
    claims: dict[str, Any]
    policy_id: str
    matched_labels: tuple[str, ...]
    findings: tuple[dict[str, Any], ...]
    cnf_jwk: dict[str, Any] | None
    nonce: bytes | None
    token_id: str
    issuer: str
    issued_at: datetime
    expires_at: datetime
    kid: str
    raw: dict[str, Any]
    policy_sha256: str = ""  # ear_verifier_claims.policy_sha256: SHA-256 of the canonical JSON of the policy applied
    # The matched workload version ({"name", "version", "id", "policy", "status"}): the required one when
    # `required_workload` was given, else the best complete match; None when the evidence matched none.
    workload: dict[str, Any] | None = None
    workloads: tuple[dict[str, Any], ...] = ()
    policy_ids: tuple[str, ...] = ()  # ear_appraisal_policy_ids, in the order applied
    verifier_claims: dict[str, Any] = field(default_factory=dict)
    components: tuple[ComponentClaims, ...] = ()  # a composite's GPUs, gpu0.. in order


def verify_result(
    token: str,
    jwks: Mapping[str, Any] | JwksCache,
    *,
    expected_nonce: bytes | None = None,
    required_status: str = "affirming",
    leeway: timedelta = timedelta(seconds=30),
    issuer: str | None = None,
    now: datetime | None = None,
    required_labels: Collection[str] = (),
    allowed_policies: Collection[str] = (),
    required_workload: str | None = None,
    min_version: str | None = None,
    min_gpus: int = 0,
) -> ResultClaims:
    """Verify `token` and return its claims, or raise ResultError (checks run in the order of the codes).

    TOKEN_MALFORMED, TOKEN_ALG_UNSUPPORTED, TOKEN_KID_UNKNOWN (a JwksCache refreshes once first), TOKEN_KEY_INVALID,
    TOKEN_SIGNATURE_INVALID, TOKEN_ISSUER_MISMATCH, TOKEN_EXPIRED, TOKEN_NOT_YET_VALID, TOKEN_NONCE_MISSING,
    TOKEN_NONCE_MISMATCH, TOKEN_STATUS_INSUFFICIENT, TOKEN_WORKLOAD_MISMATCH, TOKEN_WORKLOAD_VERSION_TOO_OLD,
    TOKEN_LABEL_MISSING, TOKEN_POLICY_NOT_ALLOWED, TOKEN_GPUS_INSUFFICIENT. `required_workload` names the approved
    workload the evidence must have matched completely (at least `min_version`, with `required_status` under the
    workload's own policy); `required_labels` names workloads that must all have matched. `required_status`
    "warning" also accepts "affirming". `allowed_policies` (empty: any) lists policy ids and/or policy SHA-256s (64
    hex digits); the result must have been appraised under one of them (one of its `ear_appraisal_policy_ids` or its
    `ear_verifier_claims.policy_sha256`), so a workload cannot get a secret on a result appraised under a lenient
    policy. `min_gpus`: at least that many GPU components (each, like the evidence's submodule, of at least
    `required_status`). A token of another EAR profile (e.g. draft-fv-rats-ear's) is TOKEN_MALFORMED. A JwksCache
    that cannot reach the verifier raises UnavailableError JWKS_UNAVAILABLE (retryable)."""
    now = _checked_arguments(required_status, now, min_gpus)
    header, claims = verify_jws(token, jwks)  # RFC 7515, RFC 7518 s3.4
    iss = check_issuer(claims, issuer)  # RFC 7519 s4.1.1
    issued_at, expires_at = check_lifetime(claims, now, leeway)  # RFC 7519 s4.1.4-4.1.6
    check_profile(claims)  # draft-ietf-rats-ear-04 s3
    nonce = check_nonce(claims, expected_nonce)  # RFC 9711 s4.1
    status = check_status(claims, required_status)  # draft s3
    tee, submod, submod_status = check_submodule(claims, required_status)  # draft s3.1
    workloads = matched_workloads(submod)
    workload = check_workload(workloads, required_workload, min_version, required_status)
    labels = check_labels(workloads, required_labels, required_status)
    policy_id, policy_hash = check_policy(submod, allowed_policies)
    return ResultClaims(
        status=status,
        tee=tee,
        submod_status=submod_status,
        policy_id=policy_id,
        matched_labels=labels,
        nonce=nonce,
        issuer=_typed(iss if iss is not None else "", str, "iss"),
        issued_at=issued_at,
        expires_at=expires_at,
        kid=str(header["kid"]),
        raw=claims,
        policy_sha256=policy_hash,
        workload=workload,
        workloads=workloads,
        **_typed_members(claims, submod, min_gpus),
    )


def _typed_members(claims: Mapping[str, Any], submod: Mapping[str, Any], min_gpus: int) -> dict[str, Any]:
    """The ResultClaims members read as they are, each of its JSON type, after the last check: at least `min_gpus`
    GPU components. Raises ResultError TOKEN_GPUS_INSUFFICIENT or TOKEN_MALFORMED."""
    check_gpus(claims, min_gpus)
    extra = verifier_claims(submod)
    return {
        "trust_vector": _vector(submod.get("ear_trustworthiness_vector", {})),
        "claims": _typed(submod.get("ear_attester_claims", {}), dict, "ear_attester_claims"),
        "findings": _findings(extra.get("findings", [])),
        "cnf_jwk": _cnf(claims),
        "token_id": _typed(claims.get("jti", ""), str, "jti"),
        "policy_ids": policy_ids(submod),
        "verifier_claims": extra,
        "components": tuple(_component(name, part) for name, part in components(claims)),
    }


def _component(name: str, submod: Mapping[str, Any]) -> ComponentClaims:
    """One GPU component submodule, each member of its JSON type. Raises ResultError TOKEN_MALFORMED."""
    extra = verifier_claims(submod)
    return ComponentClaims(
        name=name,
        status=str(submod["ear_status"]),
        trust_vector=_vector(submod.get("ear_trustworthiness_vector", {})),
        claims=_typed(submod.get("ear_attester_claims", {}), dict, "ear_attester_claims"),
        findings=_findings(extra.get("findings", [])),
        verifier_claims=extra,
    )


def _checked_arguments(required_status: str, now: datetime | None, min_gpus: int = 0) -> datetime:
    """`now`, or the current time. Raises ValueError for a `required_status` that is no EAR tier, a naive `now` or a
    negative `min_gpus`."""
    if required_status not in STATUS_RANK:
        raise ValueError(f"required_status must be one of {sorted(STATUS_RANK)}")
    if isinstance(min_gpus, bool) or not isinstance(min_gpus, int) or min_gpus < 0:
        raise ValueError("min_gpus must be a non-negative integer")
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now
