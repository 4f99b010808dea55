"""Client side of the verifier: workloads (challenge, appraise) and relying parties (verify the EAR token).

Imports only the generated `verifier.v1` stubs and `verifier.errors`: no server module comes along.

Relying party in a few lines::

    from verifier.client import JwksCache, ResultError, fetch_jwks_http, verify_result

    keys = JwksCache(lambda: fetch_jwks_http("https://verifier.example/.well-known/jwks.json"))
    try:
        result = verify_result(token, keys, expected_nonce=challenge_nonce, issuer="tee-verifier",
                               required_workload="my-enclave", min_version="1.4")
    except ResultError as error:        # error.code: TOKEN_EXPIRED, TOKEN_NONCE_MISMATCH, ...
        refuse(error.code)
    else:
        release_secret_to(result.cnf_jwk)   # RFC 7800: the key the attested workload holds

Workload side (the nonce and the workload's public key go into the evidence, then to Appraise)::

    from verifier.client import VerifierClient

    with VerifierClient("verifier.example:50051", credentials=grpc.ssl_channel_credentials()) as client:
        challenge = client.create_challenge()
        evidence = get_attestation_document(nonce=challenge.nonce, public_key=spki_der)
        appraisal = client.appraise("nitro", evidence, nonce=challenge.nonce, runtime_data=spki_der)
        send_to_relying_party(appraisal.token)

`verify_result` checks the ES256 JWS (RFC 7515, RFC 7518 s3.4) against the verifier's JWKS (RFC 7517; a JwksCache
refreshes once on an unknown kid; `typ` eat+jwt), `iss`/`exp`/`iat` (RFC 7519), `eat_nonce` (RFC 9711), the EAR profile,
`ear_status` and the single submodule's `ear_status`, the one a relying party must check (draft-ietf-rats-ear-04
s3.1), and returns the `cnf` key (RFC 7800). `AsyncVerifierClient` (grpc.aio) has the
same methods as coroutines. RPC failures raise ClientError with the server's stable code (e.g. EVIDENCE_EMPTY).
"""

from verifier.client.aio import AsyncVerifierClient
from verifier.client.jwks import JwksCache, fetch_jwks_grpc, fetch_jwks_http
from verifier.client.results import ResultClaims, ResultError, verify_result
from verifier.client.sync import Appraisal, Challenge, ClientError, ComponentAppraisal, GpuReport, VerifierClient

__all__ = [
    "Appraisal",
    "AsyncVerifierClient",
    "Challenge",
    "ClientError",
    "ComponentAppraisal",
    "GpuReport",
    "JwksCache",
    "ResultClaims",
    "ResultError",
    "VerifierClient",
    "fetch_jwks_grpc",
    "fetch_jwks_http",
    "verify_result",
]
