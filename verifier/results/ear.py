"""EAT Attestation Result (EAR) claims, draft-fv-rats-ear (JWT serialisation, RFC 7519 / RFC 9711 EAT).

One appraisal becomes one submodule named after its TEE. Verifier-specific detail goes under `x-verifier.*`
claims in the submodule (unregistered extensions, draft-fv-rats-ear s3.1).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from verifier.appraisal.model import Appraisal
from verifier.errors import VerifierError
from verifier.results.keys import b64url_encode

EAR_PROFILE = "tag:github.com,2023:veraison/ear"
DEFAULT_LIFETIME = timedelta(minutes=5)
VERIFIER_DEVELOPER = "tee-verifier"


def _json_copy(value: Any) -> Any:
    """A detached, JSON-only copy (the appraisal's dicts stay mutable); non-JSON values are a bug."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise VerifierError("EAR_CLAIMS_NOT_JSON", "annotated evidence holds a value JSON cannot carry") from None


def build_ear(
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
) -> dict[str, Any]:
    """EAR claims for one appraisal: `iat`/`exp` in whole seconds (RFC 7519 s4.1), `eat_nonce` base64url only
    when a nonce was given (EAT, RFC 9711 s4.1), `ear.status` both top-level and in the submodule.

    Deterministic: the same inputs give equal dicts with the same key order, hence the same JSON.
    `x-verifier.policy-sha256` (SHA-256 of the policy's canonical JSON) and `x-verifier.reference-set-version`
    (the reference-value set appraised against) are in the submodule when given, as are `x-verifier.collateral`
    (which vendor collateral decided) and `x-verifier.revocation` (whether revocation was checked).
    """
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    if lifetime <= timedelta(0):
        raise ValueError("lifetime must be positive")
    iat = int(issued_at.timestamp())
    submod = _submodule(appraisal, policy_sha256, reference_set_version)
    claims: dict[str, Any] = {
        "eat_profile": EAR_PROFILE,
        "iat": iat,
        "exp": iat + int(lifetime.total_seconds()),
        "iss": issuer,
        "jti": token_id,
        "ear.verifier-id": {"developer": VERIFIER_DEVELOPER, "build": verifier_build},
        "ear.status": appraisal.status.value,
        "submods": {appraisal.tee: submod},
    }
    if nonce is not None:
        claims["eat_nonce"] = b64url_encode(nonce)
    if cnf_jwk is not None:
        claims["cnf"] = {"jwk": dict(cnf_jwk)}  # RFC 7800: the key the attested workload holds
    return claims


def _submodule(appraisal: Appraisal, policy_sha256: str | None, reference_set_version: int | None) -> dict[str, Any]:
    """The submodule of `appraisal` (draft-fv-rats-ear s3.1): its `ear.*` claims, then the `x-verifier.*` ones, the
    optional ones only when present. Raises VerifierError EAR_CLAIMS_NOT_JSON."""
    submod: dict[str, Any] = {
        "ear.status": appraisal.status.value,
        "ear.trustworthiness-vector": appraisal.trust_vector.to_json(),
        "ear.appraisal-policy-id": appraisal.policy_id,
        "ear.veraison.annotated-evidence": _json_copy(appraisal.claims),
        "x-verifier.findings": [
            {"code": f.code, "tier": f.tier.value, "claim": f.claim.value, "expected": f.expected, "actual": f.actual}
            for f in appraisal.findings
        ],
        "x-verifier.matched-reference-values": list(appraisal.matched_reference_values),
    }
    if appraisal.workload is not None:
        submod["x-verifier.workload"] = _json_copy(appraisal.workload)
        submod["x-verifier.workloads"] = _json_copy(list(appraisal.workloads))
    if appraisal.collateral:
        submod["x-verifier.collateral"] = _json_copy(list(appraisal.collateral))
    if appraisal.revocation is not None:
        submod["x-verifier.revocation"] = appraisal.revocation
    if policy_sha256 is not None:
        submod["x-verifier.policy-sha256"] = policy_sha256
    if reference_set_version is not None:
        submod["x-verifier.reference-set-version"] = reference_set_version
    return submod
