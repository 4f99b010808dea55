"""The claim checks of an attestation result whose JWS verified (verifier.client.jws), one helper per check, run by
`verify_result` in this order: RFC 7519 `iss` (s4.1.1), `exp`/`iat`/`nbf` (s4.1.4-4.1.6), the EAR profile
(draft-ietf-rats-ear-04 s3), EAT `eat_nonce` (RFC 9711 s4.1), the top-level `ear_status` (s3) and every submodule's
`ear_status` (s3.1: the statuses a relying party must check), the matched workload and labels, and the appraisal
policy. A token has one submodule named after its TEE (the evidence's) and, for composite evidence (a CPU TEE with
its GPUs), one component submodule per GPU, `gpu0`..`gpu<N-1>`: each must have the required status (the result is
as good as its worst part) and `check_gpus` counts them. Verifier detail is read from the submodule's
`ear_verifier_claims` map (s3.1). The typed readers at the end refuse claims of the wrong JSON type as
TOKEN_MALFORMED.

Tokens of the draft-fv-rats-ear era (`ear.status`, `x-verifier.*`) are refused as TOKEN_MALFORMED: a clean break.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from verifier.client.jws import ResultError, _b64decode, b64url

EAR_PROFILE = "tag:ietf.org,2026:rats/ear#04"  # draft-ietf-rats-ear-04 s3
MAX_EAT_NONCE = 64  # RFC 9711 s4.1 / draft s3: eat_nonce is 8..64 bytes
# EAR tiers, best first; contraindicated and none rank equal (neither may be relied upon).
STATUS_RANK = {"affirming": 3, "warning": 2, "contraindicated": 1, "none": 1}
COMPONENT = re.compile(r"gpu(0|[1-9][0-9]?)")  # a composite's GPU submodule names


def check_issuer(claims: Mapping[str, Any], issuer: str | None) -> Any:
    """The `iss` claim as given (RFC 7519 s4.1.1); with `issuer`, it must be that. Raises ResultError
    TOKEN_ISSUER_MISMATCH."""
    iss = claims.get("iss")
    if issuer is not None and iss != issuer:
        raise ResultError(
            "TOKEN_ISSUER_MISMATCH",
            "the token's issuer is not the expected one",
            expected=issuer,
            actual=str(iss)[:128],
        )
    return iss


def check_lifetime(claims: Mapping[str, Any], now: datetime, leeway: timedelta) -> tuple[datetime, datetime]:
    """(`iat`, `exp`), both required (RFC 7519 s4.1.6, s4.1.4): `now` must be before `exp` and not before `iat` or
    `nbf` (s4.1.5), each within `leeway`. Raises ResultError TOKEN_MALFORMED, TOKEN_EXPIRED or TOKEN_NOT_YET_VALID."""
    issued_at, expires_at = _instant(claims, "iat"), _instant(claims, "exp")
    if now >= expires_at + leeway:
        raise ResultError(
            "TOKEN_EXPIRED",
            "the token has expired",
            expected=f"before {expires_at.isoformat()}",
            actual=now.isoformat(),
        )
    not_before = _instant(claims, "nbf") if "nbf" in claims else issued_at
    if max(issued_at, not_before) > now + leeway:
        raise ResultError("TOKEN_NOT_YET_VALID", "the token is issued in the future", actual=issued_at.isoformat())
    return issued_at, expires_at


def check_profile(claims: Mapping[str, Any]) -> str:
    """`eat_profile`, which must be the EAR profile of draft-ietf-rats-ear-04 s3 (`EAR_PROFILE`): the claim names read
    below are that draft's. Raises ResultError TOKEN_MALFORMED (also for tokens of the draft-fv-rats-ear era)."""
    profile = claims.get("eat_profile")
    if profile != EAR_PROFILE:
        raise ResultError(
            "TOKEN_MALFORMED",
            "eat_profile is not the EAR profile this client reads",
            expected=EAR_PROFILE,
            actual=str(profile)[:64],
        )
    return EAR_PROFILE


def check_nonce(claims: Mapping[str, Any], expected: bytes | None) -> bytes | None:
    """The decoded `eat_nonce` (RFC 9711 s4.1); with `expected`, it must be present and equal (compared in constant
    time). An `expected` nonce over 64 bytes has no `eat_nonce` (the draft's limit): the submodule's
    `ear_verifier_claims.nonce_sha256` must then be its SHA-256. Raises ResultError TOKEN_NONCE_MISSING,
    TOKEN_MALFORMED or TOKEN_NONCE_MISMATCH."""
    if expected is not None and len(expected) > MAX_EAT_NONCE:
        return _check_long_nonce(claims, expected)
    value = claims.get("eat_nonce")
    if value is None:
        if expected is not None:
            raise ResultError("TOKEN_NONCE_MISSING", "the token carries no eat_nonce", expected=b64url(expected))
        return None
    if not isinstance(value, str):
        raise ResultError("TOKEN_MALFORMED", "eat_nonce is not a base64url string")
    nonce = _b64decode(value, "eat_nonce")
    if expected is not None and not hmac.compare_digest(value.encode("ascii"), b64url(expected).encode("ascii")):
        raise ResultError(
            "TOKEN_NONCE_MISMATCH",
            "the token's nonce is not this challenge's",
            expected=b64url(expected),
            actual=value[:128],
        )
    return nonce


def _check_long_nonce(claims: Mapping[str, Any], expected: bytes) -> bytes:
    want = hashlib.sha256(expected).hexdigest()
    _, submod = submodule(claims)
    carried = verifier_claims(submod).get("nonce_sha256")
    if carried is None:
        raise ResultError("TOKEN_NONCE_MISSING", "the token names no nonce of over 64 bytes", expected=want)
    if not isinstance(carried, str) or not hmac.compare_digest(carried.encode("utf-8"), want.encode("ascii")):
        raise ResultError(
            "TOKEN_NONCE_MISMATCH", "the token's nonce is not this challenge's", expected=want, actual=str(carried)[:64]
        )
    return expected


def check_status(claims: Mapping[str, Any], required_status: str) -> str:
    """The top-level `ear_status` (draft-ietf-rats-ear-04 s3: optional, no better than the worst submodule), at least
    `required_status` when present; the submodules' statuses (`check_submodule`) are the ones that decide, and the
    worst of them is returned when the top-level one is absent. Raises ResultError TOKEN_MALFORMED or
    TOKEN_STATUS_INSUFFICIENT."""
    if "ear_status" not in claims:  # the worst submodule's (draft s3), the evidence's first among equals
        main, parts = _split_submods(claims)
        return str(min((main, *parts), key=lambda part: STATUS_RANK[part[1]["ear_status"]])[1]["ear_status"])
    status = claims.get("ear_status")
    if not _is_tier(status):
        raise ResultError("TOKEN_MALFORMED", "ear_status is not an EAR tier", actual=str(status)[:32])
    if STATUS_RANK[status] < STATUS_RANK[required_status]:
        raise ResultError(
            "TOKEN_STATUS_INSUFFICIENT",
            "the attestation result is not good enough",
            expected=required_status,
            actual=status,
        )
    return status


def submodule(claims: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(TEE name, EAR-appraisal) of the evidence's submodule in `submods` (draft s3): the one not named as a GPU
    component (`components`), whose `ear_status` is a tier. Raises ResultError TOKEN_MALFORMED (no submodule, more
    than one besides the components, components not numbered gpu0..gpu<N-1>)."""
    main, _ = _split_submods(claims)
    return main


def components(claims: Mapping[str, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The GPU component submodules of a composite result, `gpu0`..`gpu<N-1>` in order (empty otherwise), each with
    a tier as `ear_status`. Raises ResultError TOKEN_MALFORMED as `submodule` does."""
    _, parts = _split_submods(claims)
    return parts


def _split_submods(
    claims: Mapping[str, Any],
) -> tuple[tuple[str, dict[str, Any]], tuple[tuple[str, dict[str, Any]], ...]]:
    submods = claims.get("submods")
    if not isinstance(submods, dict) or not submods:
        raise ResultError("TOKEN_MALFORMED", "the result must have a submodule")
    names = [name for name in submods if isinstance(name, str) and COMPONENT.fullmatch(name)]
    others = [name for name in submods if name not in names]
    if len(others) != 1:
        raise ResultError("TOKEN_MALFORMED", "the result must have exactly one submodule besides its GPU components")
    if sorted(names, key=lambda n: int(n[3:])) != [f"gpu{i}" for i in range(len(names))]:
        raise ResultError("TOKEN_MALFORMED", "the GPU components are not numbered gpu0..gpu<N-1>")
    ordered = [others[0], *(f"gpu{i}" for i in range(len(names)))]
    for name in ordered:
        if not isinstance(submods[name], dict) or not _is_tier(submods[name].get("ear_status")):
            which = "the submodule" if name == others[0] else f"GPU component {name}"
            raise ResultError("TOKEN_MALFORMED", f"{which} has no EAR tier (ear_status)")
    return (others[0], submods[others[0]]), tuple((name, submods[name]) for name in ordered[1:])


def verifier_claims(submod: Mapping[str, Any]) -> dict[str, Any]:
    """The submodule's `ear_verifier_claims` map (draft s3.1; empty when absent). Raises ResultError TOKEN_MALFORMED
    when it is not a map."""
    value = submod.get("ear_verifier_claims", {})
    if not isinstance(value, dict):
        raise ResultError("TOKEN_MALFORMED", "ear_verifier_claims is not a map")
    return value


def check_submodule(claims: Mapping[str, Any], required_status: str) -> tuple[str, dict[str, Any], str]:
    """(TEE name, submodule, its `ear_status`) of the evidence's submodule. Its status and every GPU component's (the
    statuses a relying party must check, draft s3.1) must be at least `required_status`, and the top-level
    `ear_status`, when present, no better than the worst of them (draft s3). Raises ResultError TOKEN_MALFORMED or
    TOKEN_STATUS_INSUFFICIENT (naming the submodule)."""
    (tee, submod), parts = _split_submods(claims)
    ranks = []
    for name, part in ((tee, submod), *parts):
        status = part["ear_status"]
        ranks.append(STATUS_RANK[status])
        if STATUS_RANK[status] < STATUS_RANK[required_status]:
            raise ResultError(
                "TOKEN_STATUS_INSUFFICIENT",
                f"submodule {name} is not good enough",
                expected=required_status,
                actual=status,
            )
    top = claims.get("ear_status")
    if _is_tier(top) and STATUS_RANK[top] > min(ranks):
        raise ResultError("TOKEN_MALFORMED", "the top-level ear_status is better than a submodule's", actual=top)
    return tee, submod, submod["ear_status"]


def check_gpus(claims: Mapping[str, Any], min_gpus: int) -> int:
    """The number of GPU components (each already of the required status, `check_submodule`), at least `min_gpus`.
    Raises ResultError TOKEN_MALFORMED or TOKEN_GPUS_INSUFFICIENT."""
    count = len(components(claims))
    if count < min_gpus:
        raise ResultError(
            "TOKEN_GPUS_INSUFFICIENT",
            "the result carries fewer GPUs than required",
            expected=f">= {min_gpus}",
            actual=str(count),
        )
    return count


def matched_workloads(submod: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """`ear_verifier_claims.workloads`: every completely matched workload version with its policy and status. Raises
    ResultError TOKEN_MALFORMED."""
    value = verifier_claims(submod).get("workloads", [])
    if not isinstance(value, list) or not all(
        isinstance(w, dict)
        and isinstance(w.get("name"), str)
        and isinstance(w.get("version"), str)
        and _is_tier(w.get("status"))
        for w in value
    ):
        raise ResultError("TOKEN_MALFORMED", "ear_verifier_claims.workloads is not a list of workload versions")
    return tuple(dict(w) for w in value)


def check_workload(
    workloads: tuple[dict[str, Any], ...], name: str | None, min_version: str | None, required_status: str
) -> dict[str, Any] | None:
    """The matched version of workload `name` (None when no workload is required), at least `min_version`
    (compared as dotted numbers when both are, else as text) and of at least `required_status` under its own
    policy. Raises ResultError TOKEN_WORKLOAD_MISMATCH, TOKEN_STATUS_INSUFFICIENT or TOKEN_WORKLOAD_VERSION_TOO_OLD."""
    if name is None:
        return workloads[0] if workloads else None
    found = [w for w in workloads if w["name"] == name]
    if not found:
        raise ResultError(
            "TOKEN_WORKLOAD_MISMATCH",
            "the evidence did not match the required workload",
            expected=name[:128],
            actual=",".join(w["name"] for w in workloads)[:256] or "none",
        )
    good = [w for w in found if STATUS_RANK[w["status"]] >= STATUS_RANK[required_status]]
    if not good:
        raise ResultError(
            "TOKEN_STATUS_INSUFFICIENT",
            f"workload {name} is not good enough",
            expected=required_status,
            actual=found[0]["status"],
        )
    if min_version is not None:
        good = [w for w in good if _version_key(w["version"]) >= _version_key(min_version)]
        if not good:
            raise ResultError(
                "TOKEN_WORKLOAD_VERSION_TOO_OLD",
                f"workload {name} is older than required",
                expected=f">= {min_version}"[:128],
                actual=found[0]["version"][:64],
            )
    return good[0]


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Dotted versions compare numerically part by part ("1.10" > "1.9"); other parts as text, after numbers."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in version.split("."))


def check_labels(
    workloads: tuple[dict[str, Any], ...],
    required_labels: Collection[str],
    required_status: str,
) -> tuple[str, ...]:
    """The matched labels (a label is the name of a completely matched workload of at least `required_status`), which
    must include every one of `required_labels`. Raises ResultError TOKEN_LABEL_MISSING."""
    labels = tuple(w["name"] for w in workloads if STATUS_RANK[w["status"]] >= STATUS_RANK[required_status])
    missing = sorted(set(required_labels) - set(labels))
    if missing:
        raise ResultError(
            "TOKEN_LABEL_MISSING",
            "required reference-value labels did not match",
            expected=",".join(sorted(required_labels)),
            actual=",".join(labels),
        )
    return labels


def policy_ids(submod: Mapping[str, Any]) -> tuple[str, ...]:
    """`ear_appraisal_policy_ids` (draft s3.1: a non-empty list of texts, in the order applied; empty when absent).
    Raises ResultError TOKEN_MALFORMED."""
    if "ear_appraisal_policy_ids" not in submod:
        return ()
    value = _strings(submod["ear_appraisal_policy_ids"], "ear_appraisal_policy_ids")
    if not value:
        raise ResultError("TOKEN_MALFORMED", "ear_appraisal_policy_ids is empty")
    return value


def check_policy(submod: Mapping[str, Any], allowed_policies: Collection[str]) -> tuple[str, str]:
    """(the first of `ear_appraisal_policy_ids` or "", `ear_verifier_claims.policy_sha256` or "") of the submodule;
    with `allowed_policies`, one of its policy ids or its SHA-256 must be listed. Raises ResultError TOKEN_MALFORMED
    or TOKEN_POLICY_NOT_ALLOWED."""
    ids = policy_ids(submod)
    policy_hash = _typed(verifier_claims(submod).get("policy_sha256", ""), str, "ear_verifier_claims.policy_sha256")
    policy_id = ids[0] if ids else ""
    if allowed_policies and not _policy_allowed(ids, policy_hash, allowed_policies):
        raise ResultError(
            "TOKEN_POLICY_NOT_ALLOWED",
            "the result was appraised under a policy this relying party does not accept",
            expected=",".join(sorted(allowed_policies))[:256],
            actual=f"{','.join(ids)[:64]} ({policy_hash[:64] or 'no sha256'})",
        )
    return policy_id, policy_hash


def _policy_allowed(ids: tuple[str, ...], policy_hash: str, allowed: Collection[str]) -> bool:
    """An allowed entry of 64 hex digits names a policy by SHA-256 (compared case-insensitively), else by id."""
    for entry in allowed:
        if len(entry) == 64 and all(c in "0123456789abcdefABCDEF" for c in entry):
            if policy_hash and hmac.compare_digest(entry.lower(), policy_hash.lower()):
                return True
        elif entry in ids:
            return True
    return False


def _is_tier(value: object) -> TypeGuard[str]:
    """An EAR tier name: a string in STATUS_RANK (a JSON array or object is unhashable: never ask the dict)."""
    return isinstance(value, str) and value in STATUS_RANK


def _instant(claims: Mapping[str, Any], name: str) -> datetime:
    """A NumericDate (RFC 7519 s2) claim; `iat` and `exp` are required here."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultError("TOKEN_MALFORMED", f"the {name} claim is missing or not a NumericDate")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ResultError("TOKEN_MALFORMED", f"the {name} claim is out of range") from None


def _typed(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise ResultError("TOKEN_MALFORMED", f"{what} has the wrong JSON type")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ResultError("TOKEN_MALFORMED", f"{what} is not a list of strings")
    return tuple(value)


def _vector(value: Any) -> dict[str, int]:
    if not isinstance(value, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
        raise ResultError("TOKEN_MALFORMED", "ear_trustworthiness_vector is not a map of integers")
    return dict(value)


def _findings(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ResultError("TOKEN_MALFORMED", "ear_verifier_claims.findings is not a list of objects")
    return tuple(value)


def _cnf(claims: Mapping[str, Any]) -> dict[str, Any] | None:
    """RFC 7800 s3.2: `cnf: {"jwk": {...}}`; any other confirmation method is refused as malformed here."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    if not isinstance(cnf, dict) or not isinstance(cnf.get("jwk"), dict):
        raise ResultError("TOKEN_MALFORMED", 'cnf is not a {"jwk": {...}} confirmation')
    jwk: dict[str, Any] = cnf["jwk"]
    if any(member in jwk for member in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise ResultError("TOKEN_MALFORMED", "cnf.jwk carries private key material")
    return jwk
