"""An independent check of EAR claims-sets: a JSON Schema transcribed by hand from the CDDL of draft-ietf-rats-ear-04
(s3 Figure 1 `EAR`, s3.1 Figure 2 `EAR-appraisal`; the JSON (JC<J, C> = J) side), the AR4SI types it imports
(draft-ietf-rats-ar4si: trustworthiness-tier, trustworthiness-vector with claims -128..127, verifier-id) and EAT's
nonce-type (RFC 9711 s4.1). It shares no code or constant with verifier.results.ear: the profile string, the claim
names and the bounds are retyped here from the draft.

No EAR implementation can be installed on this machine (Veraison's Go and Rust libraries need the Go proxy or
crates.io, python-ear is not on PyPI, no npm package implements EAR), so this transcription, validated by the
`jsonschema` package, stands in for one. What JSON Schema cannot say (integers that are not floats, the top-level
status no better than the worst submodule's, s3) `check_ear` checks beside it.
"""

from __future__ import annotations

from typing import Any

import jsonschema

TIERS = ["none", "affirming", "warning", "contraindicated"]  # ar4si trustworthiness-tier (JSON labels)
TIER_RANK = {"none": 0, "affirming": 1, "warning": 2, "contraindicated": 3}
TRUST_CLAIMS = [
    "instance-identity",
    "configuration",
    "executables",
    "file-system",
    "hardware",
    "runtime-opaque",
    "storage-opaque",
    "sourced-data",
]
# rfc9711.cddl: nonce-type = JC< tstr .size (8..88), bstr .size (8..64) >; binary data in JSON is base64url.
NONCE = {"type": "string", "minLength": 8, "maxLength": 88, "pattern": "^[A-Za-z0-9_-]+$"}
# "An EAR extension MUST be a map" (s3 `$$ear-extension`, s3.1 `$$ear-appraisal-extension`, s4).
EXTENSION = {"type": "object"}

APPRAISAL: dict[str, Any] = {
    "type": "object",
    "required": ["ear_status"],
    "properties": {
        "eat_profile": {"type": "string"},  # eat.general-uri / eat.general-oid
        "ear_status": {"enum": TIERS},
        "ear_trustworthiness_vector": {
            "type": "object",
            "minProperties": 1,  # non-empty<>
            "additionalProperties": False,
            "properties": {name: {"type": "integer", "minimum": -128, "maximum": 127} for name in TRUST_CLAIMS},
        },
        "ear_appraisal_policy_ids": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string"},
        },
        "eat_nonce": NONCE,
        "ear_attester_claims": {"type": "object"},
        "ear_verifier_claims": {"type": "object"},
    },
    "additionalProperties": EXTENSION,
}

EAR: dict[str, Any] = {
    "type": "object",
    "required": ["eat_profile", "iat", "ear_verifier_id", "submods"],
    "properties": {
        "eat_profile": {"const": "tag:ietf.org,2026:rats/ear#04"},
        "ear_status": {"enum": TIERS},
        "iat": {"type": "integer"},
        "exp": {"type": "integer"},
        "ear_verifier_id": {
            "type": "object",
            "required": ["developer", "build"],
            "additionalProperties": False,
            "properties": {"developer": {"type": "string"}, "build": {"type": "string"}},
        },
        "ear_raw_evidence": {"type": "array"},  # a Record CMW
        "submods": {"type": "object", "minProperties": 1, "additionalProperties": APPRAISAL},
        "eat_nonce": NONCE,
        "ear_device_topology": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        },
        # Registered JWT claims (RFC 7519 s4.1, RFC 7800 s3.1) an EAT may carry beside the EAR ones.
        "iss": {"type": "string"},
        "jti": {"type": "string"},
        "nbf": {"type": "integer"},
        "cnf": {"type": "object", "required": ["jwk"], "properties": {"jwk": {"type": "object"}}},
    },
    "additionalProperties": EXTENSION,
}


def check_ear(claims: dict[str, Any]) -> None:
    """Raise AssertionError (or jsonschema.ValidationError) unless `claims` is a JSON EAR of draft-ietf-rats-ear-04."""
    jsonschema.Draft202012Validator.check_schema(EAR)
    jsonschema.validate(claims, EAR, cls=jsonschema.Draft202012Validator)
    for name in ("iat", "exp", "nbf"):  # s3: iat/exp MUST NOT be floating point (JSON Schema accepts 1.0)
        assert name not in claims or type(claims[name]) is int, name
    worst = max(TIER_RANK[s["ear_status"]] for s in claims["submods"].values())
    if "ear_status" in claims:  # s3: no higher trust than the worst submodule
        top = TIER_RANK[claims["ear_status"]]
        assert top >= worst or claims["ear_status"] == "none", (claims["ear_status"], worst)
