"""Signed attestation results: EAR claims (draft-ietf-rats-ear-04) as ES256 JWTs (RFC 7515, RFC 7518, RFC 7519)."""

from verifier.results.ear import DEFAULT_LIFETIME, EAR_PROFILE, build_ear
from verifier.results.keys import (
    SigningKey,
    ephemeral_key,
    generate_key_file,
    load_key_file,
    load_keys,
    public_jwk,
    thumbprint,
)
from verifier.results.signer import ResultSigner

__all__ = [
    "DEFAULT_LIFETIME",
    "EAR_PROFILE",
    "ResultSigner",
    "SigningKey",
    "build_ear",
    "ephemeral_key",
    "generate_key_file",
    "load_key_file",
    "load_keys",
    "public_jwk",
    "thumbprint",
]
