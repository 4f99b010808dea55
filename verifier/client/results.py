"""Relying-party check of an EAR attestation result (draft-fv-rats-ear) carried as an ES256 JWT.

Verification is independent of the server's signer: compact JWS (RFC 7515 s7.1) with `alg` ES256 only
(RFC 7518 s3.4, raw r||s), `typ` JWT and no `crit`; the key comes from the JWKS by `kid`, never from the token
(`jwk`/`jku`/`x5u` headers are ignored). Then the RFC 7519 claims (`iss`, `exp`, `iat`, `nbf`), EAT `eat_nonce`
(RFC 9711 s4.1), `ear.status`, the single submodule and its `x-verifier.matched-labels`. RFC 7800 `cnf.jwk` is
returned for the caller to bind the workload's key (e.g. to its TLS key).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.client.jwks import JwksCache, find_key
from verifier.errors import EvidenceError

ALG = "ES256"
COORDINATE = 32  # P-256 coordinate and signature-half size in bytes
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# EAR tiers, best first; contraindicated and none rank equal (neither may be relied upon).
STATUS_RANK = {"affirming": 3, "warning": 2, "contraindicated": 1, "none": 1}


class ResultError(EvidenceError):
    """A rejected attestation result. `code` is stable (TOKEN_*); `expected`/`actual` say why, never a key."""


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


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 s2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


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
    if required_status not in STATUS_RANK:
        raise ValueError(f"required_status must be one of {sorted(STATUS_RANK)}")
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    header, claims = verify_jws(token, jwks)
    kid = str(header["kid"])

    iss = claims.get("iss")
    if issuer is not None and iss != issuer:
        raise ResultError(
            "TOKEN_ISSUER_MISMATCH",
            "the token's issuer is not the expected one",
            expected=issuer,
            actual=str(iss)[:128],
        )
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
    nonce = _nonce(claims, expected_nonce)

    status = claims.get("ear.status")
    if not _is_tier(status):
        raise ResultError("TOKEN_MALFORMED", "ear.status is not an EAR tier", actual=str(status)[:32])
    if STATUS_RANK[status] < STATUS_RANK[required_status]:
        raise ResultError(
            "TOKEN_STATUS_INSUFFICIENT",
            "the attestation result is not good enough",
            expected=required_status,
            actual=status,
        )
    submods = claims.get("submods")
    if not isinstance(submods, dict) or len(submods) != 1:
        raise ResultError("TOKEN_MALFORMED", "the result must have exactly one submodule")
    ((tee, submod),) = submods.items()
    if not isinstance(submod, dict) or not _is_tier(submod.get("ear.status")):
        raise ResultError("TOKEN_MALFORMED", "the submodule has no EAR tier")
    submod_status = submod["ear.status"]
    if STATUS_RANK[submod_status] < STATUS_RANK[required_status]:
        raise ResultError(
            "TOKEN_STATUS_INSUFFICIENT",
            f"submodule {tee} is not good enough",
            expected=required_status,
            actual=submod_status,
        )
    workloads = _workloads(submod)
    workload = _required_workload(workloads, required_workload, min_version, required_status)
    # Tokens before workloads carried loose labels (`x-verifier.matched-labels`); they are read for one release.
    # In newer tokens a label is the name of a completely matched workload.
    if "x-verifier.matched-labels" in submod:
        labels = _strings(submod.get("x-verifier.matched-labels", []), "x-verifier.matched-labels")
    else:
        labels = tuple(w["name"] for w in workloads if STATUS_RANK[w["status"]] >= STATUS_RANK[required_status])
    missing = sorted(set(required_labels) - set(labels))
    if missing:
        raise ResultError(
            "TOKEN_LABEL_MISSING",
            "required reference-value labels did not match",
            expected=",".join(sorted(required_labels)),
            actual=",".join(labels),
        )
    policy_id = _typed(submod.get("ear.appraisal-policy-id", ""), str, "ear.appraisal-policy-id")
    policy_hash = _typed(submod.get("x-verifier.policy-sha256", ""), str, "x-verifier.policy-sha256")
    if allowed_policies and not _policy_allowed(policy_id, policy_hash, allowed_policies):
        raise ResultError(
            "TOKEN_POLICY_NOT_ALLOWED",
            "the result was appraised under a policy this relying party does not accept",
            expected=",".join(sorted(allowed_policies))[:256],
            actual=f"{policy_id[:64]} ({policy_hash[:64] or 'no sha256'})",
        )
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
        kid=kid,
        raw=claims,
        policy_sha256=policy_hash,
        workload=workload,
        workloads=workloads,
    )


def _is_tier(value: object) -> TypeGuard[str]:
    """An EAR tier name: a string in STATUS_RANK (a JSON array or object is unhashable: never ask the dict)."""
    return isinstance(value, str) and value in STATUS_RANK


def _workloads(submod: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """`x-verifier.workloads`: every completely matched workload version with its policy and status."""
    value = submod.get("x-verifier.workloads", [])
    if not isinstance(value, list) or not all(
        isinstance(w, dict)
        and isinstance(w.get("name"), str)
        and isinstance(w.get("version"), str)
        and _is_tier(w.get("status"))
        for w in value
    ):
        raise ResultError("TOKEN_MALFORMED", "x-verifier.workloads is not a list of workload versions")
    return tuple(dict(w) for w in value)


def _required_workload(
    workloads: tuple[dict[str, Any], ...], name: str | None, min_version: str | None, required_status: str
) -> dict[str, Any] | None:
    """The matched version of workload `name` (None when no workload is required), at least `min_version`
    (compared as dotted numbers when both are, else as text) and of at least `required_status` under its own
    policy. Raises ResultError TOKEN_WORKLOAD_MISMATCH or TOKEN_WORKLOAD_VERSION_TOO_OLD."""
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


def _policy_allowed(policy_id: str, policy_hash: str, allowed: Collection[str]) -> bool:
    """An allowed entry of 64 hex digits names a policy by SHA-256 (compared case-insensitively), else by id."""
    for entry in allowed:
        if len(entry) == 64 and all(c in "0123456789abcdefABCDEF" for c in entry):
            if policy_hash and hmac.compare_digest(entry.lower(), policy_hash.lower()):
                return True
        elif entry == policy_id:
            return True
    return False


def verify_jws(token: str, jwks: Mapping[str, Any] | JwksCache) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of an ES256 compact JWS (RFC 7515 s5.2, RFC 7518 s3.4) whose signature verifies with the
    key its `kid` names in `jwks`; no claim is checked here. Raises ResultError TOKEN_MALFORMED, TOKEN_ALG_UNSUPPORTED,
    TOKEN_KID_UNKNOWN, TOKEN_KEY_INVALID or TOKEN_SIGNATURE_INVALID."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ResultError("TOKEN_MALFORMED", "a compact JWS has exactly three dot-separated parts")
    header = _json_object(parts[0], "header")
    if header.get("alg") != ALG:
        raise ResultError(
            "TOKEN_ALG_UNSUPPORTED", "only ES256 is accepted", expected=ALG, actual=str(header.get("alg"))[:32]
        )
    if not isinstance(header.get("typ"), str) or header["typ"].upper() != "JWT":
        raise ResultError("TOKEN_MALFORMED", "the header's typ is not JWT", actual=str(header.get("typ"))[:32])
    if "crit" in header:
        raise ResultError("TOKEN_MALFORMED", "no critical header parameter is understood (RFC 7515 s4.1.11)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ResultError("TOKEN_KID_UNKNOWN", "the token has no kid")
    jwk = jwks.key_for(kid) if isinstance(jwks, JwksCache) else find_key(jwks, kid)
    if jwk is None:
        raise ResultError("TOKEN_KID_UNKNOWN", "the token's kid is not in the key set", actual=kid[:64])
    _b64decode(parts[1], "payload")  # charset first: the signing input must be ASCII (RFC 7515 s5.2)
    _check_signature(parts, _p256_key(jwk))
    claims = _json_object(parts[1], "payload")
    return header, claims


def _b64decode(segment: str, what: str) -> bytes:
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not unpadded base64url") from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")  # RFC 7515 s5.2: reject rather than pick one
    return result


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment, what).decode("utf-8"), object_pairs_hook=_unique)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, duplicates, deep nesting
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not a JSON object") from None
    if not isinstance(value, dict):
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not a JSON object")
    return value


def _p256_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """An EC P-256 signing key from its JWK (RFC 7518 s6.2.1); `alg`, `use` and `key_ops` (RFC 7517 s4.2-4.4),
    when present, must allow verifying ES256 signatures."""
    key_ops = jwk.get("key_ops", ["verify"])
    if (
        jwk.get("kty") != "EC"
        or jwk.get("crv") != "P-256"
        or jwk.get("alg", ALG) != ALG
        or jwk.get("use", "sig") != "sig"
        or not isinstance(key_ops, list)
        or "verify" not in key_ops
    ):
        raise ResultError("TOKEN_KEY_INVALID", "the key for this kid is not an ES256 signing key")
    coordinates = []
    for name in ("x", "y"):
        value = jwk.get(name)
        try:
            raw = _b64decode(value, "key") if isinstance(value, str) else b""
        except ResultError:
            raw = b""
        if len(raw) != COORDINATE:
            raise ResultError("TOKEN_KEY_INVALID", f"the JWK's {name} is not a 32-byte coordinate")
        coordinates.append(int.from_bytes(raw, "big"))
    try:
        return ec.EllipticCurvePublicNumbers(coordinates[0], coordinates[1], ec.SECP256R1()).public_key()
    except ValueError:
        raise ResultError("TOKEN_KEY_INVALID", "the JWK's point is not on P-256") from None


def _check_signature(parts: list[str], key: ec.EllipticCurvePublicKey) -> None:
    signature = _b64decode(parts[2], "signature")
    if len(signature) != 2 * COORDINATE:
        raise ResultError(
            "TOKEN_SIGNATURE_INVALID",
            "an ES256 signature is 64 bytes (r||s)",
            expected="64",
            actual=str(len(signature)),
        )
    r, s = int.from_bytes(signature[:COORDINATE], "big"), int.from_bytes(signature[COORDINATE:], "big")
    try:
        key.verify(encode_dss_signature(r, s), f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ResultError("TOKEN_SIGNATURE_INVALID", "the token's signature does not verify") from None


def _instant(claims: Mapping[str, Any], name: str) -> datetime:
    """A NumericDate (RFC 7519 s2) claim; `iat` and `exp` are required here."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultError("TOKEN_MALFORMED", f"the {name} claim is missing or not a NumericDate")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ResultError("TOKEN_MALFORMED", f"the {name} claim is out of range") from None


def _nonce(claims: Mapping[str, Any], expected: bytes | None) -> bytes | None:
    """The decoded `eat_nonce`; with `expected`, it must be present and equal (compared in constant time)."""
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
        raise ResultError("TOKEN_MALFORMED", "ear.trustworthiness-vector is not a map of integers")
    return dict(value)


def _findings(value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ResultError("TOKEN_MALFORMED", "x-verifier.findings is not a list of objects")
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
