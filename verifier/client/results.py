"""Relying-party check of an EAR attestation result (draft-fv-rats-ear) carried as an ES256 JWT.

Verification is independent of the server's signer: compact JWS (RFC 7515 s7.1) with `alg` ES256 only
(RFC 7518 s3.4, raw r||s), `typ` JWT and no `crit`; the key comes from the JWKS by `kid`, never from the token
(`jwk`/`jku`/`x5u` headers are ignored). Then the RFC 7519 claims (`iss`, `exp`, `iat`, `nbf`), EAT `eat_nonce`
(RFC 9711 s4.1), `ear.status`, the single submodule and its `x-verifier.matched-labels`. RFC 7800 `cnf.jwk` is
returned for the caller to bind the workload's key (e.g. to its TLS key).

The signature check is in verifier.client.jws, the claim checks (one helper each, run here in order) in
verifier.client.claim_checks; the names they export are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from verifier.client.claim_checks import (
    STATUS_RANK,
    _cnf,
    _findings,
    _typed,
    _vector,
    check_issuer,
    check_labels,
    check_lifetime,
    check_nonce,
    check_policy,
    check_status,
    check_submodule,
    check_workload,
    matched_workloads,
)
from verifier.client.jwks import JwksCache
from verifier.client.jws import ALG, COORDINATE, ResultError, b64url, verify_jws

__all__ = [
    "ALG",
    "COORDINATE",
    "STATUS_RANK",
    "ResultClaims",
    "ResultError",
    "b64url",
    "verify_jws",
    "verify_result",
]


@dataclass(frozen=True)
class ResultClaims:
    """The verified claims of one EAR (single submodule `tee`). `raw` is the whole verified payload."""

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
    policy_sha256: str = ""  # x-verifier.policy-sha256: SHA-256 of the canonical JSON of the policy applied
    # The matched workload version ({"name", "version", "id", "policy", "status"}): the required one when
    # `required_workload` was given, else the best complete match; None when the evidence matched none.
    workload: dict[str, Any] | None = None
    workloads: tuple[dict[str, Any], ...] = ()


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
) -> ResultClaims:
    """Verify `token` and return its claims, or raise ResultError (checks run in the order of the codes).

    TOKEN_MALFORMED, TOKEN_ALG_UNSUPPORTED, TOKEN_KID_UNKNOWN (a JwksCache refreshes once first), TOKEN_KEY_INVALID,
    TOKEN_SIGNATURE_INVALID, TOKEN_ISSUER_MISMATCH, TOKEN_EXPIRED, TOKEN_NOT_YET_VALID, TOKEN_NONCE_MISSING,
    TOKEN_NONCE_MISMATCH, TOKEN_STATUS_INSUFFICIENT, TOKEN_WORKLOAD_MISMATCH, TOKEN_WORKLOAD_VERSION_TOO_OLD,
    TOKEN_LABEL_MISSING, TOKEN_POLICY_NOT_ALLOWED. `required_workload` names the approved workload the evidence must
    have matched completely (at least `min_version`, with `required_status` under the workload's own policy);
    `required_labels` is the pre-workload form, read from old tokens for one release. `required_status`
    "warning" also accepts "affirming". `allowed_policies` (empty: any) lists policy ids and/or policy SHA-256s (64
    hex digits); the result must have been appraised under one of them (its `ear.appraisal-policy-id` or its
    `x-verifier.policy-sha256`), so a workload cannot get a secret on a result appraised under a lenient policy.
    A JwksCache that cannot reach the verifier raises UnavailableError JWKS_UNAVAILABLE (retryable).
    """
    now = _checked_arguments(required_status, now)
    header, claims = verify_jws(token, jwks)  # RFC 7515, RFC 7518 s3.4
    iss = check_issuer(claims, issuer)  # RFC 7519 s4.1.1
    issued_at, expires_at = check_lifetime(claims, now, leeway)  # RFC 7519 s4.1.4-4.1.6
    nonce = check_nonce(claims, expected_nonce)  # RFC 9711 s4.1
    status = check_status(claims, required_status)  # draft-fv-rats-ear
    tee, submod, submod_status = check_submodule(claims, required_status)
    workloads = matched_workloads(submod)
    workload = check_workload(workloads, required_workload, min_version, required_status)
    labels = check_labels(submod, workloads, required_labels, required_status)
    policy_id, policy_hash = check_policy(submod, allowed_policies)
    return ResultClaims(
        status=status,
        tee=tee,
        submod_status=submod_status,
        trust_vector=_vector(submod.get("ear.trustworthiness-vector", {})),
        claims=_typed(submod.get("ear.veraison.annotated-evidence", {}), dict, "annotated evidence"),
        policy_id=policy_id,
        matched_labels=labels,
        findings=_findings(submod.get("x-verifier.findings", [])),
        cnf_jwk=_cnf(claims),
        nonce=nonce,
        token_id=_typed(claims.get("jti", ""), str, "jti"),
        issuer=_typed(iss if iss is not None else "", str, "iss"),
        issued_at=issued_at,
        expires_at=expires_at,
        kid=str(header["kid"]),
        raw=claims,
        policy_sha256=policy_hash,
        workload=workload,
        workloads=workloads,
    )


def _checked_arguments(required_status: str, now: datetime | None) -> datetime:
    """`now`, or the current time. Raises ValueError for a `required_status` that is no EAR tier or a naive `now`."""
    if required_status not in STATUS_RANK:
        raise ValueError(f"required_status must be one of {sorted(STATUS_RANK)}")
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now
