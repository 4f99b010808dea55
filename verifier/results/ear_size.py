"""Keeping an EAR small enough for an HTTP header: every token stays under 8 KB (nginx's default
`large_client_header_buffers` is 8 KB, and a bearer token travels in one header line).

Two rules, both deterministic (the same claims give the same token):

1. Always, in `ear_attester_claims` and in each finding: a string longer than `LONG` characters (over 64 bytes when
   it is hex, as byte values are) is replaced by its SHA-256 under the name `<name>_sha256` (lowercase hex). The
   digest is over the bytes the hex stands for when the value is even-length lowercase hex (so a relying party
   compares SHA-256 of its own nonce, user data or key), else over the UTF-8 of the text. In a list the element
   becomes `"sha256:<hex>"`. Nitro's `nonce`, `user_data` and `public_key` (up to 1 KB each, hex-doubled) become
   `nonce_sha256`, `user_data_sha256`, `public_key_sha256`; fixed-size measurements (48-byte PCRs, SNP
   `measurement`, 64-byte `report_data`) stay as they are. The full claims are in the Appraise response and the
   audit log, never lost.
2. Only when the claims-set is still over `MAX_PAYLOAD` bytes of JSON, in this order until it fits: findings keep
   only `code`, `tier` and `claim`; `matched_reference_values` is left out; `ear_attester_claims` is left out
   (draft-ietf-rats-ear-04 s8 asks that it can be); findings past the first `MAX_FINDINGS` are left out
   (`findings_omitted` counts them); last, the `collateral` list. `ear_verifier_claims.abridged` lists what was
   cut. `ear_status`, the trust vector, the workload, the policy hash and `cnf` are never cut: they are what relying
   parties and the broker use.
3. A composite token (a CPU TEE with up to 8 GPUs, verifier.composite) is cut step by step, each step applied to
   every submodule it names (so the GPUs stay alike), checking the size before each step: first, in the GPUs'
   submodules, an attester claim that is a map or list over `LARGE` bytes of JSON (the 64 measurement blocks: about
   6.7 KB, so in practice always) becomes `<name>_sha256` (`structure_digest`: SHA-256 of its compact JSON with
   sorted keys); then the GPUs' `collateral` goes and their attester claims shrink to `GPU_SUMMARY` (driver and VBIOS
   version, architecture, ueid); then finding details and matched reference values (every submodule); then the
   GPUs' attester claims; then the CPU TEE's; then each submodule keeps its first MAX_FINDINGS / (number of
   submodules) findings (at least one); then the CPU TEE's `collateral`; last, the GPUs' `evidence_sha384`. With one
   submodule this is rule 2 exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from verifier.results.keys import claims_json

LONG = 128  # characters: 64 bytes as hex (a P-256 point, a 512-bit digest or report_data still fit)
# JSON bytes of the claims-set: its base64url (4/3) plus header (~100) and signature (86) stays under 8 KB with room
# for a longer issuer or kid.
MAX_PAYLOAD = 5632
MAX_FINDINGS = 16
LARGE = 512  # bytes of JSON: a GPU's attester claim map or list beyond this is digested first (rule 3)
GPU_SUMMARY = ("driver_version", "vbios_version", "architecture", "ueid")  # what a GPU's claims shrink to (rule 3)
TOKEN_LIMIT = 8192


def payload_size(claims: dict[str, Any]) -> int:
    """Bytes of `claims` as the signer serialises them (`keys.claims_json`). Never raises for JSON data."""
    return len(claims_json(claims))


def digest(value: str) -> str:
    """SHA-256 (lowercase hex) of the bytes `value` stands for: decoded when it is even-length lowercase hex, its
    UTF-8 otherwise (rule 1 above). Never raises."""
    data = _lowercase_hex(value)
    return hashlib.sha256(value.encode("utf-8") if data is None else data).hexdigest()


def _lowercase_hex(value: str) -> bytes | None:
    """The bytes of `value` when it is even-length lowercase hex (what `re.fullmatch("(?:[0-9a-f]{2})*", value)`
    accepts), else None. In C: `bytes.fromhex` takes only ASCII hex digits and whitespace, so a result of half the
    length means no whitespace, and an unchanged `lower()` no uppercase digit (30-40x faster than that regular
    expression on a certificate's hex). Never raises."""
    try:
        data = bytes.fromhex(value)
    except ValueError:
        return None
    return data if 2 * len(data) == len(value) and value == value.lower() else None


def compact(value: Any) -> Any:
    """A detached copy of `value` with rule 1 applied (maps recursively, lists element by element; a key already
    ending in `_sha256` is left alone), equal to rule 1 applied to `json.loads(json.dumps(value, allow_nan=False))`:
    tuples become lists, str/int/float subclasses their plain values, int, float, bool and None keys their JSON
    text, so the claims dicts of an appraisal stay its own. Raises TypeError for a value JSON cannot carry and
    ValueError for a non-finite float, as `json.dumps` does (RecursionError for a cycle)."""
    return _copy(value, True)


def detached(value: Any) -> Any:
    """`compact` without rule 1: the JSON-only copy `json.loads(json.dumps(value, allow_nan=False))` is, without
    the text in between. Raises as `compact` does."""
    return _copy(value, False)


def _copy(value: Any, digest_long: bool) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key if type(key) is str else _json_key(key)
            kind = type(item)
            if (kind is str and len(item) <= LONG) or kind is int or kind is bool or item is None:
                out[name] = item  # the common leaves, without a call
            elif digest_long and isinstance(item, str) and len(item) > LONG and not name.endswith("_sha256"):
                out[f"{name}_sha256"] = digest(str.__str__(item))
            else:
                out[name] = _copy(item, digest_long)
        return out
    if isinstance(value, list | tuple):
        return [
            f"sha256:{digest(str.__str__(v))}"
            if digest_long and isinstance(v, str) and len(v) > LONG
            else _copy(v, digest_long)
            for v in value
        ]
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):  # IntEnum and the like: json writes int.__repr__
        return int(int.__repr__(value))
    if isinstance(value, float):
        return _finite(value) if kind is float else float(float.__repr__(_finite(value)))
    raise TypeError(f"a {kind.__name__} is not JSON")


def _json_key(key: Any) -> str:
    """The text `json.dumps` writes for a non-str key (RFC 8259 names are strings). Raises TypeError, ValueError."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(_finite(key))
    raise TypeError(f"a {type(key).__name__} key is not JSON")


def _finite(value: float) -> float:
    if value != value or value in (math.inf, -math.inf):
        raise ValueError("a non-finite float is not JSON")
    return value


def fit(claims: dict[str, Any], submod: dict[str, Any], *components: dict[str, Any]) -> bytes:
    """Rules 2 and 3 above on `claims`, whose submodules are `submod` (the evidence's) and, for a composite,
    `components` (its GPUs'), each changed in place with its `ear_verifier_claims`; returns the claims-set as the
    signer serialises it (`keys.claims_json`), measured last. Changes nothing when the claims-set already fits.
    Raises TypeError, ValueError for claims JSON cannot carry."""
    every = [submod, *components]
    limit = max(1, MAX_FINDINGS // len(every))
    steps: tuple[tuple[Sequence[dict[str, Any]], Cut], ...] = (
        (components, _large_claims),
        (components, _collateral),
        (components, _gpu_summary),
        (every, _finding_details),
        (every, _matched_values),
        (components, _attester_claims),
        ([submod], _attester_claims),
        (every, lambda s, v: _finding_count(s, v, limit)),
        ([submod], _collateral),
        (components, _evidence_digest),
    )
    encoded = claims_json(claims)
    for submods, cut in steps:
        if len(encoded) <= MAX_PAYLOAD:
            break
        for one in submods:  # a step cuts every submodule it names: the GPUs stay alike
            verifier_claims: dict[str, Any] = one["ear_verifier_claims"]
            name = cut(one, verifier_claims)
            if name is not None:
                verifier_claims["abridged"] = [*verifier_claims.get("abridged", []), name]
        encoded = claims_json(claims)  # after every step (one may drop an empty member without naming it)
    return encoded


Cut = Callable[[dict[str, Any], dict[str, Any]], "str | None"]


def _finding_details(submod: dict[str, Any], verifier_claims: dict[str, Any]) -> str | None:
    findings = verifier_claims.get("findings", [])
    if not any(set(f) - {"code", "tier", "claim"} for f in findings):
        return None
    verifier_claims["findings"] = [{k: f[k] for k in ("code", "tier", "claim") if k in f} for f in findings]
    return "finding_details"


def _matched_values(submod: dict[str, Any], verifier_claims: dict[str, Any]) -> str | None:
    if not verifier_claims.pop("matched_reference_values", None):
        return None
    return "matched_reference_values"


def _large_claims(submod: dict[str, Any], verifier_claims: dict[str, Any]) -> str | None:
    attester = submod.get("ear_attester_claims")
    if not isinstance(attester, dict):
        return None
    large = [k for k, v in attester.items() if isinstance(v, dict | list) and payload_size({k: v}) > LARGE]
    if not large:
        return None
    submod["ear_attester_claims"] = {
        (f"{k}_sha256" if k in large else k): (structure_digest(v) if k in large else v) for k, v in attester.items()
    }
    return "large_attester_claims"


def _gpu_summary(submod: dict[str, Any], verifier_claims: dict[str, Any]) -> str | None:
    attester = submod.get("ear_attester_claims")
    if not isinstance(attester, dict) or set(attester) <= set(GPU_SUMMARY):
        return None
    submod["ear_attester_claims"] = {k: attester[k] for k in GPU_SUMMARY if k in attester}
    return "gpu_attester_summary"


def _collateral(submod: dict[str, Any], verifier_claims: dict[str, Any]) -> str | None:
    if verifier_claims.pop("collateral", None) is None:
        return None
    return "collateral"


def _evidence_digest(submod: dict[str, Any], verifier_claims: dict[str, Any]) -> str | None:
    if verifier_claims.pop("evidence_sha384", None) is None:
        return None
    return "evidence_sha384"


def _attester_claims(submod: dict[str, Any], verifier_claims: dict[str, Any]) -> str | None:
    if submod.pop("ear_attester_claims", None) is None:
        return None
    return "attester_claims"


def _finding_count(submod: dict[str, Any], verifier_claims: dict[str, Any], limit: int) -> str | None:
    findings = verifier_claims.get("findings", [])
    if len(findings) <= limit:
        return None
    verifier_claims["findings"] = findings[:limit]
    verifier_claims["findings_omitted"] = len(findings) - limit
    return "findings"


def structure_digest(value: Any) -> str:
    """SHA-256 (lowercase hex) of a map's or list's compact JSON with sorted keys (UTF-8), as rule 3 writes it. Never
    raises for JSON data."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
